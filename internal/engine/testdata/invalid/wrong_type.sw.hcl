# expect: 4:15 Incorrect attribute value type | Attribute "condition" takes true or false
runbook "x" {}
step "core.assert" "a" {
  condition = ["yes"]
  message   = "m"
}
