package api

import (
	"encoding"
	"encoding/json"
	"reflect"
	"strings"
	"time"
	"unicode"
)

// schemaMode says which side of the wire a type is reflected for. A request
// is decoded strictly (decodeJSON rejects unknown fields) and a field the
// client leaves out is not an error of the document (the service decides
// what is required, with a 422 naming the field); a response carries every
// field its Go type encodes without omitempty.
type schemaMode int

const (
	modeResponse schemaMode = iota
	modeRequest
)

// schemaKey is one component: a Go type as reflected for one side.
type schemaKey struct {
	t    reflect.Type
	mode schemaMode
}

// schemaOverride is the schema of a type whose JSON is not its Go shape (it
// has its own MarshalJSON), or whose values are a closed set (enums).
type schemaOverride func() map[string]any

// schemas reflects Go types into JSON Schema (draft 2020-12, the dialect of
// OpenAPI 3.1) by encoding/json's rules: field names and omitempty from the
// json tag, embedded structs flattened with the shallower field winning,
// nil slices and maps and nil pointers encoded as null. Every named struct
// becomes one component, so one Go type is described once and the document
// cannot drift from what the handlers encode.
type schemas struct {
	defs      map[string]any
	names     map[schemaKey]string
	taken     map[string]schemaKey
	overrides map[reflect.Type]schemaOverride
}

func newSchemas(overrides map[reflect.Type]schemaOverride) *schemas {
	return &schemas{defs: map[string]any{}, names: map[schemaKey]string{}, taken: map[string]schemaKey{}, overrides: overrides}
}

var (
	timeType      = reflect.TypeFor[time.Time]()
	rawType       = reflect.TypeFor[json.RawMessage]()
	marshalerType = reflect.TypeFor[json.Marshaler]()
	textType      = reflect.TypeFor[encoding.TextMarshaler]()
)

// of returns the schema of t (a $ref for a named struct).
func (g *schemas) of(t reflect.Type, mode schemaMode) map[string]any {
	if o := g.overrides[t]; o != nil {
		return o()
	}

	switch {
	case t == timeType:
		return map[string]any{"type": "string", "format": "date-time"}
	case t == rawType:
		return map[string]any{}
	case t.Kind() != reflect.Pointer && (t.Implements(marshalerType) || t.Implements(textType)):
		// A custom encoding the reflector cannot see through: any JSON.
		return map[string]any{"description": "encoded by " + t.String()}
	}

	switch t.Kind() {
	case reflect.Pointer:
		return nullable(g.of(t.Elem(), mode))
	case reflect.Interface:
		return map[string]any{}
	case reflect.String:
		return map[string]any{"type": "string"}
	case reflect.Bool:
		return map[string]any{"type": "boolean"}
	case reflect.Int, reflect.Int64:
		return map[string]any{"type": "integer", "format": "int64"}
	case reflect.Int8, reflect.Int16, reflect.Int32:
		return map[string]any{"type": "integer", "format": "int32"}
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return map[string]any{"type": "integer", "minimum": 0}
	case reflect.Float32, reflect.Float64:
		return map[string]any{"type": "number", "format": "double"}
	case reflect.Slice:
		if t.Elem().Kind() == reflect.Uint8 {
			return map[string]any{"type": []any{"string", "null"}, "contentEncoding": "base64"}
		}
		return nullable(map[string]any{"type": "array", "items": g.of(t.Elem(), mode)})
	case reflect.Array:
		return map[string]any{"type": "array", "items": g.of(t.Elem(), mode), "minItems": t.Len(), "maxItems": t.Len()}
	case reflect.Map:
		return nullable(map[string]any{"type": "object", "additionalProperties": g.of(t.Elem(), mode)})
	case reflect.Struct:
		return g.structRef(t, mode)
	}
	return map[string]any{}
}

// nullable widens a schema to also accept null.
func nullable(s map[string]any) map[string]any {
	switch ty := s["type"].(type) {
	case string:
		out := clone(s)
		out["type"] = []any{ty, "null"}
		if e, ok := out["enum"].([]any); ok {
			out["enum"] = append(append([]any{}, e...), nil)
		}
		return out
	case []any:
		return s
	}
	if len(s) == 0 {
		return s
	}
	return map[string]any{"anyOf": []any{s, map[string]any{"type": "null"}}}
}

func clone(s map[string]any) map[string]any {
	out := make(map[string]any, len(s)+1)
	for k, v := range s {
		out[k] = v
	}
	return out
}

// structRef registers a named struct as a component and refers to it; an
// anonymous or generic one is described inline.
func (g *schemas) structRef(t reflect.Type, mode schemaMode) map[string]any {
	name := componentName(t)
	if name == "" {
		return g.object(t, mode)
	}

	key := schemaKey{t, mode}
	if n, ok := g.names[key]; ok {
		return ref(n)
	}

	// The same name for another type (cases.Status vs search.Status) or for
	// the other side gets a qualifier.
	if other, ok := g.taken[name]; ok && other != key {
		if other.t == t {
			name += "Input"
		} else {
			name = exported(pkgName(t)) + name
		}
	}
	g.names[key] = name
	g.taken[name] = key
	g.defs[name] = map[string]any{} // placeholder: recursive types end here
	g.defs[name] = g.object(t, mode)
	return ref(name)
}

func ref(name string) map[string]any { return map[string]any{"$ref": "#/components/schemas/" + name} }

// componentName names a struct's component ("" = describe inline).
// Generic instances (listBody[cases.Case]) are named for their argument.
func componentName(t reflect.Type) string {
	n := t.Name()
	if n == "" {
		return ""
	}

	if i := strings.IndexByte(n, '['); i >= 0 {
		arg := n[i+1 : len(n)-1]
		if j := strings.LastIndexAny(arg, "./"); j >= 0 {
			arg = arg[j+1:]
		}
		return exported(arg) + exported(strings.TrimSuffix(n[:i], "Body"))
	}
	return exported(n)
}

func pkgName(t reflect.Type) string {
	p := t.PkgPath()
	return p[strings.LastIndexByte(p, '/')+1:]
}

func exported(s string) string {
	if s == "" {
		return s
	}
	r := []rune(s)
	r[0] = unicode.ToUpper(r[0])
	return string(r)
}

// field is one JSON member of a struct, found at an embedding depth.
type field struct {
	name      string
	t         reflect.Type
	omitempty bool
	depth     int
	tag       reflect.StructTag
}

// jsonFields lists a struct's JSON members as encoding/json encodes them:
// embedded structs without a tag are flattened, and of two fields with one
// name the shallower wins.
func jsonFields(t reflect.Type, depth int, into map[string]field, order *[]string) {
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		tag, hasTag := f.Tag.Lookup("json")
		if tag == "-" {
			continue
		}

		name, opts, _ := strings.Cut(tag, ",")
		ft := f.Type
		if f.Anonymous && name == "" {
			et := ft
			if et.Kind() == reflect.Pointer {
				et = et.Elem()
			}
			if et.Kind() == reflect.Struct {
				jsonFields(et, depth+1, into, order)
				continue
			}
		}

		if !f.IsExported() || (hasTag && tag == "") {
			continue
		}

		if name == "" {
			name = f.Name
		}
		if prev, ok := into[name]; ok && prev.depth <= depth {
			continue
		} else if !ok {
			*order = append(*order, name)
		}
		into[name] = field{name: name, t: ft, omitempty: strings.Contains(","+opts+",", ",omitempty,") || strings.Contains(","+opts+",", ",omitzero,"), depth: depth, tag: f.Tag}
	}
}

// object describes a struct's members. The document's own descriptions of
// members come from the `doc` tag.
func (g *schemas) object(t reflect.Type, mode schemaMode) map[string]any {
	fields := map[string]field{}
	var order []string
	jsonFields(t, 0, fields, &order)
	props := map[string]any{}
	var required []any
	for _, name := range order {
		f := fields[name]
		s := g.of(f.t, mode)
		if d := f.tag.Get("doc"); d != "" {
			s = withDescription(s, d)
		}
		props[name] = s
		if mode == modeResponse && !f.omitempty {
			required = append(required, name)
		}
	}

	out := map[string]any{"type": "object", "properties": props, "additionalProperties": false}
	if required != nil {
		out["required"] = required
	}
	return out
}

// withDescription adds a description; a $ref cannot carry siblings in every
// tool, so it is wrapped.
func withDescription(s map[string]any, d string) map[string]any {
	if _, isRef := s["$ref"]; isRef {
		return map[string]any{"allOf": []any{s}, "description": d}
	}
	out := clone(s)
	out["description"] = d
	return out
}
