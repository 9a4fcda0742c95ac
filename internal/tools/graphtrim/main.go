// Command graphtrim copies the part of Microsoft's Graph v1.0 CSDL that the
// entra plugin and its test server use into the project's test data,
// element by element, unchanged (../shared/graph/README.md allows a trimmed
// copy with the MIT notice beside it):
//
//	go run ./internal/tools/graphtrim ../shared/graph/v1.0-Prod.csdl > internal/testing/graphtest/testdata/graph-v1.0-trimmed.csdl
package main

import (
	"fmt"
	"os"
	"regexp"
	"strings"
)

// What is used: entity, complex and enum types, bound actions, entity sets
// and singletons.
var (
	types = []string{"entity", "directoryObject", "user", "directoryRole", "passwordProfile", "servicePrincipal", "oAuth2PermissionGrant", "appRoleAssignment", "domain",
		"authentication", "authenticationMethod", "phoneAuthenticationMethod", "emailAuthenticationMethod", "microsoftAuthenticatorAuthenticationMethod",
		"softwareOathAuthenticationMethod", "fido2AuthenticationMethod", "temporaryAccessPassAuthenticationMethod", "passwordAuthenticationMethod", "group",
		"application", "passwordCredential", "keyCredential", "signInActivity", "subscribedSku", "policyDeletableItem", "conditionalAccessPolicy",
		"conditionalAccessRoot", "identityContainer", "roleManagement", "rbacApplication", "unifiedRoleAssignment", "unifiedRoleDefinition",
		"mailFolder", "messageRule", "messageRuleActions", "messageRulePredicates", "recipient", "emailAddress",
		"conditionalAccessConditionSet", "conditionalAccessUsers", "policyRoot", "policyBase", "crossTenantAccessPolicy",
		"crossTenantAccessPolicyConfigurationPartner", "crossTenantAccessPolicyInboundTrust", "internalDomainFederation", "samlOrWsFedProvider", "identityProviderBase",
		"federatedIdentityCredential", "unifiedRoleScheduleBase", "unifiedRoleEligibilitySchedule", "unifiedRoleAssignmentSchedule", "request",
		"unifiedRoleEligibilityScheduleRequest", "unifiedRoleAssignmentScheduleRequest", "requestSchedule",
		"conditionalAccessLocations", "namedLocation", "ipNamedLocation", "ipRange", "iPv4CidrRange"}
	enums      = []string{"conditionalAccessPolicyState", "importance", "authenticationProtocol", "unifiedRoleScheduleRequestActions"}
	singletons = []string{"identity", "roleManagement", "policies"}
	actions    = []string{"revokeSignInSessions", "removePassword"}
	sets       = []string{"users", "directoryRoles", "servicePrincipals", "oauth2PermissionGrants", "domains", "groups", "applications", "subscribedSkus"}
)

func main() {
	b, err := os.ReadFile(os.Args[1])
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	src := string(b)
	// The microsoft.graph schema is the first one.
	schema := src[:strings.Index(src, "</Schema>")]
	var out strings.Builder
	out.WriteString("<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<!-- Trimmed from microsoftgraph/msgraph-metadata schemas/v1.0-Prod.csdl (MIT, see LICENSE here) by internal/tools/graphtrim; each element unchanged. -->\n")
	out.WriteString("<edmx:Edmx Version=\"4.0\" xmlns:edmx=\"http://docs.oasis-open.org/odata/ns/edmx\">\n  <edmx:DataServices>\n    <Schema Namespace=\"microsoft.graph\" Alias=\"graph\" xmlns=\"http://docs.oasis-open.org/odata/ns/edm\">\n")
	for _, t := range types {
		out.WriteString(element(schema, `(EntityType|ComplexType) Name="`+t+`"`))
	}
	for _, e := range enums {
		out.WriteString(element(schema, `EnumType Name="`+e+`"`))
	}
	for _, a := range actions {
		// Every overload (one per binding type).
		for _, e := range elements(schema, `Action Name="`+a+`" IsBound="true"`) {
			out.WriteString(e)
		}
	}
	out.WriteString("      <EntityContainer Name=\"GraphService\">\n")
	for _, s := range sets {
		out.WriteString(element(src, `EntitySet Name="`+s+`"`))
	}
	for _, s := range singletons {
		out.WriteString(element(src, `Singleton Name="`+s+`"`))
	}
	out.WriteString("      </EntityContainer>\n    </Schema>\n  </edmx:DataServices>\n</edmx:Edmx>\n")
	os.Stdout.WriteString(out.String())
}

// elements are all the elements whose start tag matches head.
func elements(src, head string) []string {
	var out []string
	for rest := src; ; {
		re := regexp.MustCompile(`(?m)^[ \t]*<` + head)
		loc := re.FindStringIndex(rest)
		if loc == nil {
			return out
		}
		e := element(rest[loc[0]:], head)
		out = append(out, e)
		rest = rest[loc[0]+len(e)-1:]
	}
}

// element is the whole element whose start tag matches head, with its
// indentation, as it stands in src.
func element(src, head string) string {
	re := regexp.MustCompile(`(?m)^[ \t]*<` + head + `[^>]*?(/?)>`)
	loc := re.FindStringSubmatchIndex(src)
	if loc == nil {
		fmt.Fprintf(os.Stderr, "no %s\n", head)
		os.Exit(1)
	}
	start := loc[0]
	if src[loc[2]:loc[3]] == "/" {
		return src[start:loc[1]] + "\n"
	}
	name := strings.Fields(strings.TrimLeft(src[start:loc[1]], " \t<"))[0]
	end := strings.Index(src[start:], "</"+name+">")
	return src[start:start+end+len("</"+name+">")] + "\n"
}
