# A small, self-contained runbook: it needs no remote system, so it runs
# anywhere. Try: switchover plan examples/basic
runbook "acme-leaves-oldmsp" {
  client       = "Acme Bakery GmbH"
  old_provider = "OldMSP GmbH"
  new_provider = "NewMSP AG"
  description  = "Take the old provider's keys away and hand the house over."
}

variable "servers" {
  type        = set(string)
  default     = ["web1", "files1", "backup1"]
  description = "The Linux servers the old provider reached over SSH."
  validation {
    condition     = length(var.servers) > 0
    error_message = "List at least one server."
  }
}

variable "contact" {
  type    = string
  default = "it@acme.example"
}

locals {
  handover_note = "Handover to NewMSP AG; questions to ${var.contact}."
}

step "core.assert" "inventory_complete" {
  condition = length(var.servers) >= 1
  message   = "No servers listed: nothing to hand over."
}

step "core.noop" "inventory" {
  for_each   = var.servers
  depends_on = [step.inventory_complete]
  message    = "inventory of ${each.key}"
}

step "core.manual" "registrar" {
  instructions = <<-EOT
    Move the domain registrar account to the client's own e-mail address.
    Turn on two-factor authentication with the client's phone.
  EOT
  confirm_by   = "office manager"
}

step "core.noop" "handover" {
  message = "${local.handover_note} Servers: ${join(", ", [for s in var.servers : step.inventory[s].outputs.message])}"
}

output "note" {
  value = local.handover_note
}
