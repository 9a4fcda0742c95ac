# expect: 4:3 Unsupported argument | Did you mean "message"?
runbook "x" {}
step "core.noop" "a" {
  mesage = "hello"
}
