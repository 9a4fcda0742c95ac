# expect: 4:13 Call to unknown function | There is no function named "uper"
runbook "x" {}
step "core.noop" "a" {
  message = uper("x")
}
