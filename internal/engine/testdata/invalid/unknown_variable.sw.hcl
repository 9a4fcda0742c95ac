# expect: 5:13 Reference to undeclared input variable | No variable "contcat" is declared. Declare it with variable "contcat" { ... }. Did you mean "contact"?
runbook "x" {}
variable "contact" { default = "x" }
step "core.noop" "a" {
  message = var.contcat
}
