variable "banano_rpc_endpoint" {
  description = <<-EOT
    The Banano node's public RPC endpoint, "host:port", injected into the API
    as BANANO_RPC_ENDPOINT. It comes from the node stack's discovery
    (endpoint.json / its banano_rpc_endpoint output), never typed from memory:
    the node's external port changes when the node is updated.
  EOT
  type        = string
  nullable    = false

  # Same rule as runbook's validate_endpoint, so a bad value stops here, not
  # in a running API: host [a-z0-9.-]+ with at least one letter or hyphen (not
  # empty, not a bare dotted number), port an integer 1024-65535.
  validation {
    condition = (
      can(regex("^[a-z0-9.-]*[a-z-][a-z0-9.-]*:[0-9]+$", var.banano_rpc_endpoint))
      && try(
        tonumber(split(":", var.banano_rpc_endpoint)[1]) >= 1024
        && tonumber(split(":", var.banano_rpc_endpoint)[1]) <= 65535,
        false
      )
    )
    error_message = "banano_rpc_endpoint must be \"host:port\": host of [a-z0-9.-] with at least one letter or hyphen, port 1024-65535."
  }
}

variable "image" {
  description = "API image, tagged with the full 40-hex commit SHA it was built from (main: pay2slay-api, other branches: pay2slay-api-staging)."
  type        = string
  default     = "ghcr.io/mconstant/pay2slay-api:4f1c2a9d0b8e7c6f5a4b3c2d1e0f9a8b7c6d5e4f"
  nullable    = false

  # Immutable tags only: a SHA always names the same build; latest does not.
  validation {
    condition     = can(regex("^ghcr\\.io/mconstant/pay2slay-api(-staging)?:[0-9a-f]{40}$", var.image))
    error_message = "image must be ghcr.io/mconstant/pay2slay-api[-staging]:<40-hex commit SHA>."
  }
}
