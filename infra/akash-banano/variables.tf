variable "image" {
  description = "Banano node image, pinned to a release tag (never latest, never untagged)."
  type        = string
  default     = "bananocoin/banano:V26.1"
  nullable    = false

  validation {
    condition = (
      can(regex("^[a-z0-9][a-z0-9./_-]*:[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$", var.image))
      && !endswith(var.image, ":latest")
    )
    error_message = "The image must carry an explicit, non-latest tag (for example bananocoin/banano:V26.1)."
  }
}

variable "rpc_endpoint" {
  description = <<-EOT
    The node's public RPC endpoint, "host:port", where port is the external
    port the provider forwards to the node's internal 7072. It is unknown
    until the lease is up, so it stays empty on the first apply; the pipeline
    discovers it (runbook discover_port), then passes it back here so that
    `terraform output banano_rpc_endpoint` and endpoint.json agree.
  EOT
  type        = string
  default     = ""
  nullable    = false

  # Same rule as runbook's validate_endpoint: host [a-z0-9.-]+ with at least
  # one letter or hyphen (so not a bare dotted number), port 1024-65535.
  validation {
    condition = var.rpc_endpoint == "" || (
      can(regex("^[a-z0-9.-]*[a-z-][a-z0-9.-]*:[0-9]+$", var.rpc_endpoint))
      && try(
        tonumber(split(":", var.rpc_endpoint)[1]) >= 1024
        && tonumber(split(":", var.rpc_endpoint)[1]) <= 65535,
        false
      )
    )
    error_message = "rpc_endpoint must be empty or \"host:port\": host of [a-z0-9.-] with at least one letter or hyphen, port 1024-65535."
  }
}
