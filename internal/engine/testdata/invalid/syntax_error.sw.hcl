# expect: 4:17 Missing newline after argument
runbook "x" {}
step "core.noop" "a" {
  message = "a" "b"
}
