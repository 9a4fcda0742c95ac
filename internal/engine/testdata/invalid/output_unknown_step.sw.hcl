# expect: 4:11 Reference to undeclared step | Output "o" refers to step "missing", which is not declared.
runbook "x" {}
output "o" {
  value = step.missing.outputs.message
}
