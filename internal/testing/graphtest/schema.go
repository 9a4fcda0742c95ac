package graphtest

import (
	_ "embed"
	"encoding/xml"
	"fmt"
	"sort"
	"strings"
	"time"
)

// The part of Microsoft's Graph v1.0 CSDL this server and the entra plugin
// use, trimmed but unchanged (internal/tools/graphtrim; MIT, LICENSE here).
//
//go:embed testdata/graph-v1.0-trimmed.csdl
var csdl []byte

type csdlDoc struct {
	Schemas []struct {
		Namespace    string     `xml:"Namespace,attr"`
		EntityTypes  []csdlType `xml:"EntityType"`
		ComplexTypes []csdlType `xml:"ComplexType"`
		Actions      []csdlActn `xml:"Action"`
		EnumTypes    []struct {
			Name    string `xml:"Name,attr"`
			Members []struct {
				Name string `xml:"Name,attr"`
			} `xml:"Member"`
		} `xml:"EnumType"`
		Container csdlCntnr `xml:"EntityContainer"`
	} `xml:"DataServices>Schema"`
}

type csdlType struct {
	Name     string     `xml:"Name,attr"`
	BaseType string     `xml:"BaseType,attr"`
	Props    []csdlProp `xml:"Property"`
	Navs     []csdlProp `xml:"NavigationProperty"`
}

type csdlProp struct {
	Name     string `xml:"Name,attr"`
	Type     string `xml:"Type,attr"`
	Nullable string `xml:"Nullable,attr"`
}

type csdlActn struct {
	Name   string `xml:"Name,attr"`
	Params []struct {
		Name string `xml:"Name,attr"`
		Type string `xml:"Type,attr"`
	} `xml:"Parameter"`
}

type csdlCntnr struct {
	Sets []struct {
		Name       string `xml:"Name,attr"`
		EntityType string `xml:"EntityType,attr"`
	} `xml:"EntitySet"`
	Singletons []struct {
		Name string `xml:"Name,attr"`
		Type string `xml:"Type,attr"`
	} `xml:"Singleton"`
}

// Schema is the Graph schema the requests and answers are checked against.
type Schema struct {
	types   map[string]*csdlType       // by short name: user, directoryObject, passwordProfile
	actions map[string]map[string]bool // action name -> binding types (short)
	sets    map[string]string          // entity set or singleton -> entity type (short)
	enums   map[string]map[string]bool // enum type -> its members
}

func short(t string) string {
	t = strings.TrimSuffix(strings.TrimPrefix(t, "Collection("), ")")
	t = strings.TrimPrefix(t, "graph.")
	return strings.TrimPrefix(t, "microsoft.graph.")
}

// LoadSchema reads the embedded CSDL.
func LoadSchema() (*Schema, error) {
	var d csdlDoc
	if err := xml.Unmarshal(csdl, &d); err != nil {
		return nil, fmt.Errorf("the Graph CSDL: %v", err)
	}
	s := &Schema{types: map[string]*csdlType{}, actions: map[string]map[string]bool{}, sets: map[string]string{}, enums: map[string]map[string]bool{}}
	for _, sc := range d.Schemas {
		for i := range sc.EntityTypes {
			s.types[sc.EntityTypes[i].Name] = &sc.EntityTypes[i]
		}
		for i := range sc.ComplexTypes {
			s.types[sc.ComplexTypes[i].Name] = &sc.ComplexTypes[i]
		}
		for _, a := range sc.Actions {
			if len(a.Params) > 0 {
				if s.actions[a.Name] == nil {
					s.actions[a.Name] = map[string]bool{}
				}
				s.actions[a.Name][short(a.Params[0].Type)] = true
			}
		}
		for _, es := range sc.Container.Sets {
			s.sets[es.Name] = short(es.EntityType)
		}
		for _, sg := range sc.Container.Singletons {
			s.sets[sg.Name] = short(sg.Type)
		}
		for _, e := range sc.EnumTypes {
			s.enums[e.Name] = map[string]bool{}
			for _, m := range e.Members {
				s.enums[e.Name][m.Name] = true
			}
		}
	}
	return s, nil
}

// property finds a property (or navigation) of a type or its base types.
func (s *Schema) property(typ, name string) (csdlProp, bool, bool) {
	for t := s.types[typ]; t != nil; t = s.types[short(t.BaseType)] {
		for _, p := range t.Props {
			if p.Name == name {
				return p, false, true
			}
		}
		for _, p := range t.Navs {
			if p.Name == name {
				return p, true, true
			}
		}
	}
	return csdlProp{}, false, false
}

// derives: typ is base or derives from it.
func (s *Schema) derives(typ, base string) bool {
	for t := s.types[typ]; t != nil; t = s.types[short(t.BaseType)] {
		if t.Name == base {
			return true
		}
	}
	return false
}

// NavigationType checks a navigation property of a type and returns the
// type it leads to (of one item, for a collection).
func (s *Schema) NavigationType(typ, name string) (string, error) {
	p, nav, ok := s.property(typ, name)
	if !ok || !nav {
		return "", fmt.Errorf("navigation %s.%s is not in the Graph v1.0 schema", typ, name)
	}
	return short(p.Type), nil
}

// EntitySet checks an entity set (or singleton) exists and returns its type.
func (s *Schema) EntitySet(name string) (string, error) {
	t, ok := s.sets[name]
	if !ok {
		return "", fmt.Errorf("entity set %q is not in the Graph v1.0 schema", name)
	}
	return t, nil
}

// Action checks a bound action exists for a type.
func (s *Schema) Action(typ, name string) error {
	if !s.actions[name][typ] {
		return fmt.Errorf("action %s bound to %s is not in the Graph v1.0 schema", name, typ)
	}
	return nil
}

// Navigation checks a navigation property of a type.
func (s *Schema) Navigation(typ, name string) error {
	if _, nav, ok := s.property(typ, name); !ok || !nav {
		return fmt.Errorf("navigation %s.%s is not in the Graph v1.0 schema", typ, name)
	}
	return nil
}

// Properties checks property names (of $select or $filter) of a type.
func (s *Schema) Properties(typ string, names ...string) []string {
	var bad []string
	for _, n := range names {
		if _, _, ok := s.property(typ, n); !ok {
			bad = append(bad, fmt.Sprintf("%s.%s is not in the Graph v1.0 schema", typ, n))
		}
	}
	return bad
}

// Check checks a JSON object (a request body or an answer's entity) against
// a type: every property must exist with a value of its type.
func (s *Schema) Check(typ string, obj map[string]any) []string {
	var bad []string
	if ot, ok := obj["@odata.type"].(string); ok {
		// A derived type (#microsoft.graph.iPv4CidrRange for an ipRange)
		// has the properties of its own type.
		derived := strings.TrimPrefix(ot, "#microsoft.graph.")
		if !s.derives(derived, typ) {
			return []string{fmt.Sprintf("%s is not a %s", ot, typ)}
		}
		typ = derived
	}
	keys := make([]string, 0, len(obj))
	for k := range obj {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if strings.HasPrefix(k, "@odata.") {
			continue
		}
		p, nav, ok := s.property(typ, k)
		if !ok {
			bad = append(bad, fmt.Sprintf("%s.%s is not in the Graph v1.0 schema", typ, k))
			continue
		}
		if nav {
			continue
		}
		if msg := s.checkValue(p.Type, obj[k]); msg != "" {
			bad = append(bad, fmt.Sprintf("%s.%s: %s", typ, k, msg))
		}
	}
	return bad
}

func (s *Schema) checkValue(t string, v any) string {
	if v == nil {
		return ""
	}
	if strings.HasPrefix(t, "Collection(") {
		arr, ok := v.([]any)
		if !ok {
			return fmt.Sprintf("is %T, not a collection of %s", v, short(t))
		}
		inner := strings.TrimSuffix(strings.TrimPrefix(t, "Collection("), ")")
		for _, x := range arr {
			if msg := s.checkValue(inner, x); msg != "" {
				return msg
			}
		}
		return ""
	}
	switch t {
	case "Edm.String", "Edm.Guid":
		if _, ok := v.(string); !ok {
			return fmt.Sprintf("is %T, not %s", v, t)
		}
	case "Edm.Boolean":
		if _, ok := v.(bool); !ok {
			return fmt.Sprintf("is %T, not Edm.Boolean", v)
		}
	case "Edm.Int32", "Edm.Int64", "Edm.Double":
		if _, ok := v.(float64); !ok {
			return fmt.Sprintf("is %T, not %s", v, t)
		}
	case "Edm.DateTimeOffset":
		str, ok := v.(string)
		if _, err := time.Parse(time.RFC3339, str); !ok || err != nil {
			return fmt.Sprintf("%v is not an Edm.DateTimeOffset", v)
		}
	default:
		if members := s.enums[short(t)]; members != nil {
			if str, ok := v.(string); !ok || !members[str] {
				return fmt.Sprintf("%v is not a member of %s", v, short(t))
			}
			return ""
		}
		if ct := s.types[short(t)]; ct != nil {
			m, ok := v.(map[string]any)
			if !ok {
				return fmt.Sprintf("is %T, not %s", v, short(t))
			}
			if bad := s.Check(short(t), m); len(bad) > 0 {
				return strings.Join(bad, "; ")
			}
		}
		// Types the trimmed schema does not carry are not checked deeper.
	}
	return ""
}
