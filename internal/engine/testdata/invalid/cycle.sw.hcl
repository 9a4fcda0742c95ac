# expect: 3:1 Dependency cycle | step.a -> step.b -> step.c -> step.a
runbook "x" {}
step "core.noop" "a" {
  depends_on = [step.b]
}
step "core.noop" "b" {
  message = step.c.outputs.message
}
step "core.noop" "c" {
  message = step.a.outputs.message
}
step "core.noop" "independent" {}
