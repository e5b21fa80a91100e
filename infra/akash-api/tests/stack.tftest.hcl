# `terraform test` (no provider, no network): the endpoint rule, the image
# rule and the rendered SDL, checked at plan time.

variables {
  banano_rpc_endpoint = "provider.example.com:31877"
}

run "injects_the_endpoint_and_image" {
  command = plan
  variables {
    image = "ghcr.io/mconstant/pay2slay-api-staging:0123456789abcdef0123456789abcdef01234567"
  }

  assert {
    condition     = contains(yamldecode(output.sdl).services.api.env, "BANANO_RPC_ENDPOINT=provider.example.com:31877")
    error_message = "sdl must carry BANANO_RPC_ENDPOINT=<the endpoint>."
  }
  assert {
    condition     = yamldecode(output.sdl).services.api.image == "ghcr.io/mconstant/pay2slay-api-staging:0123456789abcdef0123456789abcdef01234567"
    error_message = "sdl must name the requested image."
  }
  assert {
    condition     = yamldecode(output.sdl).version == "2.0" && yamldecode(output.sdl).services.api.expose[0].as == 80
    error_message = "Rendering must keep the rest of the SDL."
  }
}

run "accepts_the_lowest_port" {
  command = plan
  variables {
    banano_rpc_endpoint = "a-1.provider.example.com:1024"
  }
}

run "accepts_the_highest_port" {
  command = plan
  variables {
    banano_rpc_endpoint = "node:65535"
  }
}

run "rejects_empty" {
  command = plan
  variables {
    banano_rpc_endpoint = ""
  }
  expect_failures = [var.banano_rpc_endpoint]
}

run "rejects_a_bare_ip" {
  command = plan
  variables {
    banano_rpc_endpoint = "192.168.1.10:31877"
  }
  expect_failures = [var.banano_rpc_endpoint]
}

run "rejects_a_missing_port" {
  command = plan
  variables {
    banano_rpc_endpoint = "provider.example.com"
  }
  expect_failures = [var.banano_rpc_endpoint]
}

run "rejects_port_1023" {
  command = plan
  variables {
    banano_rpc_endpoint = "provider.example.com:1023"
  }
  expect_failures = [var.banano_rpc_endpoint]
}

run "rejects_port_65536" {
  command = plan
  variables {
    banano_rpc_endpoint = "provider.example.com:65536"
  }
  expect_failures = [var.banano_rpc_endpoint]
}

run "rejects_uppercase_and_schemes" {
  command = plan
  variables {
    banano_rpc_endpoint = "http://Provider.example.com:31877"
  }
  expect_failures = [var.banano_rpc_endpoint]
}

run "rejects_latest" {
  command = plan
  variables {
    image = "ghcr.io/mconstant/pay2slay-api:latest"
  }
  expect_failures = [var.image]
}

run "rejects_a_short_sha" {
  command = plan
  variables {
    image = "ghcr.io/mconstant/pay2slay-api:4f1c2a9"
  }
  expect_failures = [var.image]
}
