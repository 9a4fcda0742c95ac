# The backups the new provider takes over: prove they are fresh,
# consistent and restorable, then take the repository key away from the old
# provider. After the rotation, set the plugin's password to the new secret
# (secret("restic/office"), in the handover bundle).

runbook "backup-handover" {
  description = "Verify the backups and rotate the repository key"
}

variable "repository" {
  description = "The restic repository: a path, sftp:user@host:/path, rest:https://..."
}
variable "password" {
  description = "The repository password the old provider handed over"
  sensitive   = true
}
variable "hosts" {
  description = "Hosts whose backups must be fresh"
  type        = list(string)
}

plugin "backup" {
  repository = var.repository
  password   = var.password
}

step "backup.restic_snapshots" "before" {
  keep_daily  = 7
  keep_weekly = 4
}

step "backup.restic_verify" "backups" {
  hosts            = var.hosts
  max_age          = "26h"
  read_data_subset = "5%"
  sample_files     = 20
}

step "backup.restic_rotate_key" "key" {
  new_password = secret("restic/office")
  depends_on   = [step.backups]
}

step "core.manual" "clients" {
  instructions = "Put the new repository password (secret restic/office, in the handover bundle) into the backup clients' configuration, then check that tonight's backup ran."
  confirm_by   = "the new provider's engineer"
  depends_on   = [step.key]
}
