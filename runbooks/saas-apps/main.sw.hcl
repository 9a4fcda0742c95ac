# The old MSP leaves the client's SaaS tools: deactivate its accounts in the
# PSA (SCIM 2.0), take them out of the PSA's admin groups, and revoke its API
# token in the RMM (a REST API without a plugin: http.request). Values to
# fill in are in saas.vars.json.example; tokens go in SWITCHOVER_VAR_*.

runbook "saas-offboarding" {
  description = "Deprovision the previous IT provider in the SaaS tools"
}

variable "psa_scim_url" {
  description = "The PSA's SCIM base URL, e.g. https://psa.example.com/scim/v2"
}
variable "psa_scim_token" {
  description = "A SCIM token of the new provider (not the old one's)"
  sensitive   = true
}
variable "old_provider_domain" {
  description = "The old provider's e-mail domain, e.g. oldmsp.example"
}
variable "rmm_api_url" {
  description = "The RMM's API base URL, e.g. https://rmm.example.com/api/v1"
}
variable "rmm_admin_token" {
  description = "An API token of the new provider in the RMM: the RMM's settings > API"
  sensitive   = true
}
variable "old_provider_token_name" {
  description = "The name of the old provider's API token in the RMM"
}
variable "psa_admin_groups" {
  description = "The PSA's groups with rights the old provider must lose (by displayName or id)"
  default     = ["Admins"]
}
variable "ca_file" {
  description = "A CA to trust for both tools (null: the system's CAs)"
  default     = null
}

plugin "scim" {
  base_url = var.psa_scim_url
  token    = var.psa_scim_token
  ca_file  = var.ca_file
}

plugin "http" {
  base_url = var.rmm_api_url
  ca_file  = var.ca_file
  headers  = { Authorization = "Bearer ${var.rmm_admin_token}" }
}

step "scim.inventory" "psa_before" {}

# Read while planning: the plan lists every account it deactivates. Only
# work and primary addresses count, and a user who also has an address
# outside the old provider's domain (the client's own account with an alias
# of the old provider) is not taken: the plan names each such near miss.
step "scim.find_users" "oldmsp" {
  email_domain = var.old_provider_domain
}

step "scim.remove_group_members" "admins" {
  for_each = toset(var.psa_admin_groups)
  group    = each.value
  members  = [for u in step.oldmsp.outputs.users : u.id]
  by       = "id"
}

step "scim.deactivate_user" "deactivate" {
  for_each = step.oldmsp.outputs.users
  user     = each.value.id
  by       = "id"
}

step "http.request" "rmm_token" {
  check = { url = "tokens" }
  condition = {
    # #(...)#: every token of that name must be inactive, not the first.
    path   = "tokens.#(name==\"${var.old_provider_token_name}\")#.active"
    equals = "false"
  }
  apply   = [{ method = "DELETE", url = "tokens/${var.old_provider_token_name}" }]
  outputs = { active_tokens = "tokens.#(active==true)#.name" }
}
