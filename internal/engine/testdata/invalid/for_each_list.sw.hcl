# expect: 4:14 Invalid for_each argument | not a list
runbook "x" {}
step "core.noop" "a" {
  for_each = ["web1", "web2"]
}
