# The backups the new provider takes over: prove they are fresh,
# consistent and restorable, take the repository key away from the old
# provider, and take the data back from the master key it may have kept:
# a new repository with a master key of its own gets a copy of every
# snapshot. Deleting the old repository is left to a person.

runbook "backup-handover" {
  description = "Verify the backups, rotate the key, move them to a repository of the new provider's"
}

variable "repository" {
  description = "The restic repository: a path, sftp:user@host:/path, rest:https://..."
}
variable "password" {
  description = "The repository password the old provider handed over"
  sensitive   = true
}
variable "new_repository" {
  description = "Where the new repository goes (restic_migrate): a path, sftp:..., rest:... (a URL with credentials: sensitive, through SWITCHOVER_VAR_new_repository)"
}
variable "hosts" {
  description = "Hosts whose backups must be fresh"
  type        = list(string)
}

# Before, during and after the rotation: the old password, then the one
# the rotation stored.
plugin "backup" {
  repository       = var.repository
  password         = var.password
  rotated_password = secret("restic/office")
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

# The rotation keeps restic's master key: whoever kept a copy of an old
# key file and its password still reads the repository. The copy has a
# master key of its own.
step "backup.restic_migrate" "move" {
  to               = var.new_repository
  new_password     = secret("restic/office")
  read_data_subset = "5%"
  depends_on       = [step.key]
}

step "core.manual" "clients" {
  instructions = "Point the backup clients at the new repository (new_repository) with the new password (secret restic/office, in the handover bundle), then check that tonight's backup ran into it."
  confirm_by   = "the new provider's engineer"
  depends_on   = [step.move]
}

step "core.manual" "delete_old" {
  instructions = "Delete the old repository (repository) once tonight's backup is in the new one: it holds every snapshot under the master key the old provider may have kept."
  confirm_by   = "the client's managing director"
  depends_on   = [step.clients]
}
