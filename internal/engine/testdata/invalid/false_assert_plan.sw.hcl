# mode: plan-walk
# expect: 5:15 Assertion failed (step.check) | Need at least two servers.
runbook "x" {}
step "core.assert" "check" {
  condition = length(["web1"]) >= 2
  message   = "Need at least two servers."
}
