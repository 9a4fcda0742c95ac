# expect: 4:1 Duplicate variable | Variable "servers" was already declared at
runbook "x" {}
variable "servers" { default = [] }
variable "servers" { default = [] }
