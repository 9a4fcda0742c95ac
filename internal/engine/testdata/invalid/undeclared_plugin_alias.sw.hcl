# expect: 5:12 Reference to undeclared plugin configuration | no plugin "core" block has alias = "branch"
runbook "x" {}
plugin "core" {}
step "core.noop" "a" {
  plugin = core.branch
}
