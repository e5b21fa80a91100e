# The API (faucet) stack: one Akash deployment, independent of the node's.
#
# Terraform renders the SDL the pipeline deploys: deploy.yaml with the image
# and BANANO_RPC_ENDPOINT filled in. There is no provider to drive Akash with
# (see versions.tf); runbook (playbooks/split-deploy.rhai) applies the result.

locals {
  sdl_source = yamldecode(file("${path.module}/deploy.yaml"))
  api        = local.sdl_source.services.api

  endpoint_env = "BANANO_RPC_ENDPOINT=${var.banano_rpc_endpoint}"
  has_endpoint_env = anytrue([
    for e in local.api.env : startswith(e, "BANANO_RPC_ENDPOINT=")
  ])

  sdl = yamlencode(merge(local.sdl_source, {
    services = merge(local.sdl_source.services, {
      api = merge(local.api, {
        image = var.image
        env = [
          for e in local.api.env :
          startswith(e, "BANANO_RPC_ENDPOINT=") ? local.endpoint_env : e
        ]
      })
    })
  }))
}

# Keeps the rendered SDL in state, so `terraform plan` shows exactly what a
# new image or a new node endpoint would change. (terraform_data is built
# into Terraform: no provider.)
resource "terraform_data" "sdl" {
  input = local.sdl
}
