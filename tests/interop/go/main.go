// Command interop stands in for a Go Machinery v1 program in this project's tests. It declares
// the v1 structs that travel between Go and Python (Signature, Arg, TaskState, TaskResult,
// GroupMeta) with the field names and JSON types Go Machinery v1 uses, and only the standard
// library: so what it writes is what Go's encoding/json writes for Go Machinery, and what it
// reads is read the way a Go Machinery worker reads a message (json.Decoder with UseNumber, then
// each typed argument converted to a Go value of its declared type).
//
// Modes (one JSON document per input line, one per output line):
//
//	interop decode    message bodies in; for each, every argument of it and of its callbacks
//	                  converted to Go values: {"ok":true,"tasks":[{"Name":..,"Args":[{"Name":..,"Type":..,
//	                  "GoType":..,"Value":..}],"IgnoreWhenTaskNotRegistered":..}]} or {"ok":false,"error":".."}
//	                  (an argument's Name is left out when it is empty; the worker binds by position)
//	interop encode    signatures in (typed args, Values as JSON); each Value is made a real Go value
//	                  of its Type (int64, []byte from base64, ...) and the Signature is written by
//	                  json.Marshal, as Go Machinery's broker writes it
//	interop state     TaskState documents in; the Go values of their results out, as decode does
//	interop group     GroupMeta documents in; written back by json.Marshal (a round trip through the struct)
//	interop writestate  TaskState documents in (typed Results, Values as JSON); written with real Go values
//	interop member    a chord member's success done as Go's worker and Redis backend do it (redis.go)
//	interop succeed   {"Message": signature, "Results": typed results} in; the OnSuccess callbacks
//	                  Go's worker sends, each result appended as its own argument (worker.go)
package main

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"reflect"
	"strconv"
	"strings"
	"time"
)

// Arg is one typed argument of a task call.
type Arg struct {
	Name  string
	Type  string
	Value interface{}
}

// Signature is one task call as Go Machinery v1 sends it.
type Signature struct {
	UUID                        string
	Name                        string
	RoutingKey                  string
	ETA                         *time.Time
	GroupUUID                   string
	GroupTaskCount              int
	Args                        []Arg
	Headers                     map[string]interface{}
	Priority                    uint8
	Immutable                   bool
	RetryCount                  int
	RetryTimeout                int
	OnSuccess                   []*Signature
	OnError                     []*Signature
	ChordCallback               *Signature
	ChordErrorCallback          *Signature
	BrokerMessageGroupId        string
	SQSReceiptHandle            string
	StopTaskDeletionOnError     bool
	IgnoreWhenTaskNotRegistered bool
}

// TaskResult is one typed return value of a task.
type TaskResult struct {
	Type  string      `bson:"type"`
	Value interface{} `bson:"value"`
}

// TaskState is what a result backend keeps for a task.
type TaskState struct {
	TaskUUID  string        `bson:"_id"`
	TaskName  string        `bson:"task_name"`
	State     string        `bson:"state"`
	Results   []*TaskResult `bson:"results"`
	Error     string        `bson:"error"`
	CreatedAt time.Time     `bson:"created_at"`
	TTL       int64         `bson:"ttl,omitempty"`
}

// GroupMeta is what a result backend keeps for a group.
type GroupMeta struct {
	GroupUUID      string    `bson:"_id"`
	TaskUUIDs      []string  `bson:"task_uuids"`
	ChordTriggered bool      `bson:"chord_triggered"`
	Lock           bool      `bson:"lock"`
	CreatedAt      time.Time `bson:"created_at"`
	TTL            int64     `bson:"ttl,omitempty"`
}

var scalarTypes = map[string]reflect.Type{
	"bool": reflect.TypeOf(true), "string": reflect.TypeOf(""),
	"int": reflect.TypeOf(int(0)), "int8": reflect.TypeOf(int8(0)), "int16": reflect.TypeOf(int16(0)),
	"int32": reflect.TypeOf(int32(0)), "int64": reflect.TypeOf(int64(0)),
	"uint": reflect.TypeOf(uint(0)), "uint8": reflect.TypeOf(uint8(0)), "uint16": reflect.TypeOf(uint16(0)),
	"uint32": reflect.TypeOf(uint32(0)), "uint64": reflect.TypeOf(uint64(0)),
	"float32": reflect.TypeOf(float32(0)), "float64": reflect.TypeOf(float64(0)),
	"byte": reflect.TypeOf(byte(0)),
}

// scalar converts one decoded JSON value (json.Number for numbers) to the Go type named typeName.
func scalar(typeName string, value interface{}) (reflect.Value, error) {
	t, ok := scalarTypes[typeName]
	if !ok {
		return reflect.Value{}, fmt.Errorf("%s is not one of supported types", typeName)
	}
	out := reflect.New(t).Elem()
	switch t.Kind() {
	case reflect.Bool:
		b, ok := value.(bool)
		if !ok {
			return out, fmt.Errorf("%v is not bool", value)
		}
		out.SetBool(b)
	case reflect.String:
		s, ok := value.(string)
		if !ok {
			return out, fmt.Errorf("%v is not string", value)
		}
		out.SetString(s)
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		n, ok := value.(json.Number)
		if !ok {
			return out, fmt.Errorf("%v is not %s", value, typeName)
		}
		i, err := strconv.ParseInt(string(n), 10, t.Bits())
		if err != nil {
			return out, err
		}
		out.SetInt(i)
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		n, ok := value.(json.Number)
		if !ok {
			return out, fmt.Errorf("%v is not %s", value, typeName)
		}
		u, err := strconv.ParseUint(string(n), 10, t.Bits())
		if err != nil {
			return out, err
		}
		out.SetUint(u)
	case reflect.Float32, reflect.Float64:
		n, ok := value.(json.Number)
		if !ok {
			return out, fmt.Errorf("%v is not %s", value, typeName)
		}
		f, err := strconv.ParseFloat(string(n), t.Bits())
		if err != nil {
			return out, err
		}
		out.SetFloat(f)
	}
	return out, nil
}

// convert turns a typed argument's decoded Value into a Go value of its Type, as a Go Machinery
// worker must before it calls the task function: scalars, flat slices, []byte/[]uint8 from base64.
func convert(typeName string, value interface{}) (interface{}, error) {
	if !strings.HasPrefix(typeName, "[]") {
		v, err := scalar(typeName, value)
		if err != nil {
			return nil, err
		}
		return v.Interface(), nil
	}
	inner := typeName[2:]
	elem, ok := scalarTypes[inner]
	if !ok {
		return nil, fmt.Errorf("%s is not one of supported types", typeName)
	}
	if s, isString := value.(string); isString && (inner == "uint8" || inner == "byte") {
		raw, err := base64.StdEncoding.DecodeString(s)
		if err != nil {
			return nil, err
		}
		return raw, nil
	}
	slice := reflect.MakeSlice(reflect.SliceOf(elem), 0, 0)
	if value == nil {
		return slice.Interface(), nil
	}
	items, ok := value.([]interface{})
	if !ok {
		return nil, fmt.Errorf("%v is not %s", value, typeName)
	}
	for _, item := range items {
		v, err := scalar(inner, item)
		if err != nil {
			return nil, err
		}
		slice = reflect.Append(slice, v)
	}
	return slice.Interface(), nil
}

type convertedArg struct {
	Name   string `json:",omitempty"`
	Type   string
	GoType string
	Value  interface{}
}

type convertedTask struct {
	Path       string
	UUID       string
	Name       string
	RoutingKey string
	ETA        *time.Time
	Immutable  bool
	RetryCount int
	Args       []convertedArg
	// IgnoreWhenTaskNotRegistered as the message carries it for this signature.
	IgnoreWhenTaskNotRegistered bool
}

func convertArgs(args []Arg) ([]convertedArg, error) {
	out := []convertedArg{}
	for i, arg := range args {
		v, err := convert(arg.Type, arg.Value)
		if err != nil {
			return nil, fmt.Errorf("Args[%d]: %v", i, err)
		}
		out = append(out, convertedArg{arg.Name, arg.Type, fmt.Sprintf("%T", v), v})
	}
	return out, nil
}

// walk converts the arguments of sig and of every signature nested in it, depth first.
func walk(sig *Signature, path string, out *[]convertedTask) error {
	args, err := convertArgs(sig.Args)
	if err != nil {
		return fmt.Errorf("%s.%v", path, err)
	}
	*out = append(*out, convertedTask{path, sig.UUID, sig.Name, sig.RoutingKey, sig.ETA, sig.Immutable, sig.RetryCount,
		args, sig.IgnoreWhenTaskNotRegistered})
	for i, cb := range sig.OnSuccess {
		if err := walk(cb, fmt.Sprintf("%s.OnSuccess[%d]", path, i), out); err != nil {
			return err
		}
	}
	for i, cb := range sig.OnError {
		if err := walk(cb, fmt.Sprintf("%s.OnError[%d]", path, i), out); err != nil {
			return err
		}
	}
	if sig.ChordCallback != nil {
		return walk(sig.ChordCallback, path+".ChordCallback", out)
	}
	return nil
}

func decodeStrict(line []byte, into interface{}) error {
	decoder := json.NewDecoder(bytes.NewReader(line))
	decoder.UseNumber()
	return decoder.Decode(into)
}

func decodeMessage(line []byte) interface{} {
	sig := new(Signature)
	if err := decodeStrict(line, sig); err != nil {
		return map[string]interface{}{"ok": false, "error": err.Error()}
	}
	tasks := []convertedTask{}
	if err := walk(sig, "message", &tasks); err != nil {
		return map[string]interface{}{"ok": false, "error": err.Error()}
	}
	return map[string]interface{}{"ok": true, "tasks": tasks}
}

// realValues replaces each typed Value of sig (and its callbacks) by a Go value of its Type.
func realValues(sig *Signature) error {
	for i := range sig.Args {
		v, err := convert(sig.Args[i].Type, sig.Args[i].Value)
		if err != nil {
			return err
		}
		sig.Args[i].Value = v
	}
	for _, group := range [][]*Signature{sig.OnSuccess, sig.OnError} {
		for _, cb := range group {
			if err := realValues(cb); err != nil {
				return err
			}
		}
	}
	if sig.ChordCallback != nil {
		return realValues(sig.ChordCallback)
	}
	return nil
}

func encodeMessage(line []byte) interface{} {
	sig := new(Signature)
	if err := decodeStrict(line, sig); err != nil {
		return map[string]interface{}{"ok": false, "error": err.Error()}
	}
	if err := realValues(sig); err != nil {
		return map[string]interface{}{"ok": false, "error": err.Error()}
	}
	return sig
}

func decodeState(line []byte) interface{} {
	state := new(TaskState)
	if err := decodeStrict(line, state); err != nil {
		return map[string]interface{}{"ok": false, "error": err.Error()}
	}
	results := []convertedArg{}
	for i, r := range state.Results {
		v, err := convert(r.Type, r.Value)
		if err != nil {
			return map[string]interface{}{"ok": false, "error": fmt.Sprintf("Results[%d]: %v", i, err)}
		}
		results = append(results, convertedArg{"", r.Type, fmt.Sprintf("%T", v), v})
	}
	return map[string]interface{}{"ok": true, "TaskUUID": state.TaskUUID, "TaskName": state.TaskName,
		"State": state.State, "Error": state.Error, "Results": results, "CreatedAt": state.CreatedAt}
}

func decodeGroup(line []byte) interface{} {
	meta := new(GroupMeta)
	if err := decodeStrict(line, meta); err != nil {
		return map[string]interface{}{"ok": false, "error": err.Error()}
	}
	return meta
}

func main() {
	modes := map[string]func([]byte) interface{}{
		"decode": decodeMessage, "encode": encodeMessage, "state": decodeState, "group": decodeGroup,
		"writestate": writeState, "member": completeMember, "succeed": succeed,
	}
	if len(os.Args) != 2 || modes[os.Args[1]] == nil {
		fmt.Fprintln(os.Stderr, "usage: interop decode|encode|state|group|writestate|member|succeed < lines")
		os.Exit(2)
	}
	handle := modes[os.Args[1]]
	scanner := bufio.NewScanner(os.Stdin)
	scanner.Buffer(make([]byte, 1<<20), 64<<20)
	out := bufio.NewWriter(os.Stdout)
	defer out.Flush()
	for scanner.Scan() {
		line := scanner.Bytes()
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		text, err := json.Marshal(handle(line))
		if err != nil {
			text, _ = json.Marshal(map[string]interface{}{"ok": false, "error": err.Error()})
		}
		out.Write(text)
		out.WriteByte('\n')
	}
	if err := scanner.Err(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
