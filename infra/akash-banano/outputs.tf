output "banano_rpc_endpoint" {
  description = "Public \"host:port\" of the node's RPC, as discovered by the pipeline (empty until then). Published as endpoint.json for the API stack."
  value       = var.rpc_endpoint
}

output "internal_rpc_port" {
  description = "The container port whose forwarded external port is discovered (the node's RPC)."
  value       = local.internal_rpc_port
}

output "image" {
  description = "The node image the SDL deploys."
  value       = var.image
}

output "sdl" {
  description = "The Akash SDL (v2) to deploy for the node stack."
  value       = local.sdl

  # Never publish an SDL the rest of the pipeline cannot use.
  precondition {
    condition     = local.sdl_source.version == "2.0"
    error_message = "deploy.yaml must be Akash SDL version \"2.0\"."
  }
  precondition {
    condition     = local.rpc_exposed_globally
    error_message = "deploy.yaml: service node must expose port 7072 (tcp) to global; discovery looks for that port."
  }
}
