# expect: 4:16 Invalid on_failure | on_failure is halt
runbook "x" {}
step "core.noop" "a" {
  on_failure = ignore
}
