# expect: 4:13 Reference to each without for_each
runbook "x" {}
step "core.noop" "a" {
  message = each.key
}
