# expect: 3:1 Unsupported block type | Blocks of type "stpe" are not expected here. Did you mean "step"?
runbook "x" {}
stpe "core.noop" "a" {}
