# expect: 4:1 Duplicate step | Step "a" was already declared at
runbook "x" {}
step "core.noop" "a" {}
step "core.noop" "a" {}
