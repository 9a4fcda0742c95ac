# expect: 3:32 Missing required argument | The argument "instructions" is required
runbook "x" {}
step "core.manual" "registrar" {
  confirm_by = "office manager"
}
