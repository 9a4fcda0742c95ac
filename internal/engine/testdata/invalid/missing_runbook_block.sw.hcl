# expect: 1:1 Missing runbook block
step "core.noop" "a" {}
