# `terraform test` (no provider, no network): the module's variables, outputs
# and preconditions, checked at plan time.

run "defaults_render_the_committed_sdl" {
  command = plan

  assert {
    condition     = output.sdl == file("${path.module}/deploy.yaml")
    error_message = "With the default image, sdl must be deploy.yaml verbatim."
  }
  assert {
    condition     = output.internal_rpc_port == 7072
    error_message = "internal_rpc_port must be 7072."
  }
  assert {
    condition     = output.banano_rpc_endpoint == ""
    error_message = "banano_rpc_endpoint must be empty until discovery fills it."
  }
}

run "publishes_a_discovered_endpoint" {
  command = plan
  variables {
    rpc_endpoint = "provider.example.com:31877"
  }
  assert {
    condition     = output.banano_rpc_endpoint == "provider.example.com:31877"
    error_message = "banano_rpc_endpoint must be the discovered endpoint."
  }
}

run "swaps_the_image" {
  command = plan
  variables {
    image = "bananocoin/banano:V27.0"
  }
  assert {
    condition     = yamldecode(output.sdl).services.node.image == "bananocoin/banano:V27.0"
    error_message = "sdl must name the requested image."
  }
  assert {
    condition     = yamldecode(output.sdl).services.node.expose[0].port == 7072
    error_message = "Swapping the image must keep the rest of the SDL."
  }
}

run "rejects_a_bare_ip_endpoint" {
  command = plan
  variables {
    rpc_endpoint = "10.0.0.7:31877"
  }
  expect_failures = [var.rpc_endpoint]
}

run "rejects_a_privileged_port" {
  command = plan
  variables {
    rpc_endpoint = "provider.example.com:80"
  }
  expect_failures = [var.rpc_endpoint]
}

run "rejects_latest" {
  command = plan
  variables {
    image = "bananocoin/banano:latest"
  }
  expect_failures = [var.image]
}

run "rejects_an_untagged_image" {
  command = plan
  variables {
    image = "bananocoin/banano"
  }
  expect_failures = [var.image]
}
