# expect: 3:6 Unknown plugin | no plugin named "ldapp"
runbook "x" {}
step "ldapp.disable_user" "a" {}
