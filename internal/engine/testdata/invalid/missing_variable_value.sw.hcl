# expect: 3:1 No value for required variable | Variable "servers" has no default. Give it a value with -var 'servers=...', in a -var-file, or in the environment variable SWITCHOVER_VAR_servers.
runbook "x" {}
variable "servers" {
  type = set(string)
}
