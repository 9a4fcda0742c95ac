# expect: 4:1 Duplicate plugin configuration | Plugin configuration "core.b" was already declared at
runbook "x" {}
plugin "core" { alias = "b" }
plugin "core" { alias = "b" }
