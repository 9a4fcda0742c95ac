# expect: 4:13 Invalid timeout | "5 minutes" is not
runbook "x" {}
step "core.noop" "a" {
  timeout = "5 minutes"
}
