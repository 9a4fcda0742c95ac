# expect: 4:17 Reference to undeclared step | Step "a" refers to step "b", which is not declared
runbook "x" {}
step "core.noop" "a" {
  depends_on = [step.b]
}
