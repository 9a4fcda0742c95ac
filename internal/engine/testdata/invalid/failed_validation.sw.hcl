# expect: 6:21 Invalid value for variable | List at least one server.
runbook "x" {}
variable "servers" {
  default = []
  validation {
    condition     = length(var.servers) > 0
    error_message = "List at least one server."
  }
}
