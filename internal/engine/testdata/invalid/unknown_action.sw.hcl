# expect: 3:6 Unknown action | Plugin "core" has no action "manul"; its actions are assert, manual, noop. Did you mean "manual"?
runbook "x" {}
step "core.manul" "a" {}
