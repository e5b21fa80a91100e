# The Banano node stack: one Akash deployment running the node.
#
# What Terraform does here, and why it is so little: there is no provider to
# drive Akash with (see versions.tf), so this module renders the SDL the
# pipeline deploys and publishes the values the API stack needs. The live
# lease is created and updated by runbook (playbooks/split-deploy.rhai), which
# then discovers the forwarded RPC port and feeds it back as var.rpc_endpoint.

locals {
  # The node's RPC port inside the container. The world reaches it through a
  # random external port that the provider picks (and may change on update).
  internal_rpc_port = 7072

  sdl_path   = "${path.module}/deploy.yaml"
  sdl_source = yamldecode(file(local.sdl_path))
  node       = local.sdl_source.services.node

  # The committed file verbatim (comments and all) when the image is the one
  # it already names; otherwise the same document with the image swapped.
  sdl = var.image == local.node.image ? file(local.sdl_path) : yamlencode(merge(local.sdl_source, {
    services = merge(local.sdl_source.services, {
      node = merge(local.node, { image = var.image })
    })
  }))

  rpc_exposed_globally = anytrue([
    for e in local.node.expose :
    e.port == local.internal_rpc_port && try(e.proto, "tcp") == "tcp"
    && anytrue([for t in try(e.to, []) : try(t.global, false)])
  ])
}

# Keeps the rendered SDL in state, so `terraform plan` shows exactly what a
# change to deploy.yaml or var.image would deploy. (A resource with no
# provider: terraform_data is built into Terraform.)
resource "terraform_data" "sdl" {
  input = local.sdl
}
