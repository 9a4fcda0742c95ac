# expect: 4:13 Reference to undeclared step | Step "a" refers to step "inventroy", which is not declared. Did you mean "inventory"?
runbook "x" {}
step "core.noop" "a" {
  message = step.inventroy.outputs.message
}
step "core.noop" "inventory" {}
