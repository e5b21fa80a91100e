output "sdl" {
  description = "The Akash SDL (v2) to deploy for the API stack, with the image and BANANO_RPC_ENDPOINT filled in."
  value       = local.sdl

  # Never publish an SDL that would start the API without its node.
  precondition {
    condition     = local.sdl_source.version == "2.0"
    error_message = "deploy.yaml must be Akash SDL version \"2.0\"."
  }
  precondition {
    condition     = local.has_endpoint_env
    error_message = "deploy.yaml: service api must list BANANO_RPC_ENDPOINT= in env; the endpoint is injected there."
  }
}

output "banano_rpc_endpoint" {
  description = "The Banano RPC endpoint injected into the API."
  value       = var.banano_rpc_endpoint
}

output "image" {
  description = "The API image the SDL deploys."
  value       = var.image
}
