// pprofcheck is a strict, independent validator of the CPU profiles anorak serves.
//
// It parses a profile with github.com/google/pprof/profile (Parse + CheckValid) and then checks what
// CheckValid does not but the scrapers require: mapping, location and function ids exactly 1..N in
// order (Parca), string_table[0] == "" and every string valid UTF-8, every location's mapping present,
// every sample with a location, labels that are either string or numeric with Pyroscope-valid names,
// Go's CPU profile types, and nonzero time and duration. Those need the raw protobuf, which the
// profile package hides, so the file is also decoded here at the wire level.
//
// Usage: pprofcheck [-json] FILE|-   (FILE is a gzip'd protobuf, as /debug/pprof/profile serves it)
//
// Exit status: 0 valid, 1 invalid profile (one line per problem on stderr), 2 usage or I/O error.
// With -json a valid profile is summarized on stdout (see summary below).
package main

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"regexp"
	"unicode/utf8"

	"github.com/google/pprof/profile"
)

// Pyroscope's label name rule and value length limit.
var labelNameRx = regexp.MustCompile(`^[a-zA-Z_][a-zA-Z0-9_.]*$`)

const maxLabelValue = 2048

// --- JSON summary -----------------------------------------------------------------------------------

type valueType struct {
	Type string `json:"type"`
	Unit string `json:"unit"`
}

type frame struct {
	Function string `json:"function"`
	Mapping  string `json:"mapping"` // mapping file name, "" when the address is outside any mapping
	BuildID  string `json:"build_id"`
	Address  uint64 `json:"address"`
}

type sample struct {
	Values    []int64             `json:"values"`
	Labels    map[string][]string `json:"labels"`
	NumLabels map[string][]int64  `json:"num_labels"`
	NumUnits  map[string][]string `json:"num_units"`
	Stack     []frame             `json:"stack"` // leaf first; an inlined call gives one frame per function
}

type mapping struct {
	ID           uint64 `json:"id"`
	Start        uint64 `json:"start"`
	Limit        uint64 `json:"limit"`
	Offset       uint64 `json:"offset"`
	File         string `json:"file"`
	BuildID      string `json:"build_id"`
	HasFunctions bool   `json:"has_functions"`
}

type summary struct {
	SampleTypes   []valueType `json:"sample_types"`
	PeriodType    valueType   `json:"period_type"`
	Period        int64       `json:"period"`
	TimeNanos     int64       `json:"time_nanos"`
	DurationNanos int64       `json:"duration_nanos"`
	Totals        []int64     `json:"totals"` // sum of each sample type over all samples
	Mappings      []mapping   `json:"mappings"`
	Samples       []sample    `json:"samples"`
}

func summarize(p *profile.Profile) *summary {
	s := &summary{
		PeriodType:    valueType{},
		Period:        p.Period,
		TimeNanos:     p.TimeNanos,
		DurationNanos: p.DurationNanos,
		Totals:        make([]int64, len(p.SampleType)),
		Mappings:      []mapping{},
		Samples:       []sample{},
	}
	for _, st := range p.SampleType {
		s.SampleTypes = append(s.SampleTypes, valueType{st.Type, st.Unit})
	}
	if p.PeriodType != nil {
		s.PeriodType = valueType{p.PeriodType.Type, p.PeriodType.Unit}
	}
	for _, m := range p.Mapping {
		s.Mappings = append(s.Mappings, mapping{m.ID, m.Start, m.Limit, m.Offset, m.File, m.BuildID,
			m.HasFunctions})
	}
	for _, ps := range p.Sample {
		js := sample{
			Values:    ps.Value,
			Labels:    map[string][]string{},
			NumLabels: map[string][]int64{},
			NumUnits:  map[string][]string{},
			Stack:     []frame{},
		}
		for i, v := range ps.Value {
			s.Totals[i] += v
		}
		for k, v := range ps.Label {
			js.Labels[k] = v
		}
		for k, v := range ps.NumLabel {
			js.NumLabels[k] = v
		}
		for k, v := range ps.NumUnit {
			js.NumUnits[k] = v
		}
		for _, loc := range ps.Location {
			js.Stack = append(js.Stack, frames(loc)...)
		}
		s.Samples = append(s.Samples, js)
	}
	return s
}

func frames(loc *profile.Location) []frame {
	base := frame{Address: loc.Address}
	if loc.Mapping != nil {
		base.Mapping, base.BuildID = loc.Mapping.File, loc.Mapping.BuildID
	}
	if len(loc.Line) == 0 {
		return []frame{base}
	}
	out := make([]frame, 0, len(loc.Line))
	for _, ln := range loc.Line {
		f := base
		f.Function = ln.Function.Name
		out = append(out, f)
	}
	return out
}

// --- checks on the parsed profile -------------------------------------------------------------------

type problems []string

func (p *problems) addf(format string, args ...interface{}) {
	*p = append(*p, fmt.Sprintf(format, args...))
}

// The second sample type and the period type: cpu (/debug/pprof/profile) or offcpu (/debug/pprof/offcpu).
var profileType = "cpu"

func checkParsed(p *profile.Profile, bad *problems) {
	want := []valueType{{"samples", "count"}, {profileType, "nanoseconds"}}
	got := make([]valueType, 0, len(p.SampleType))
	for _, st := range p.SampleType {
		got = append(got, valueType{st.Type, st.Unit})
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		bad.addf("sample types are %v, want %v", got, want)
	}
	if p.PeriodType == nil || p.PeriodType.Type != profileType || p.PeriodType.Unit != "nanoseconds" {
		bad.addf("period type is %v, want %s/nanoseconds", p.PeriodType, profileType)
	}
	if p.Period <= 0 {
		bad.addf("period is %d, want > 0", p.Period)
	}
	if p.TimeNanos <= 0 {
		bad.addf("time_nanos is %d, want > 0 (the window start)", p.TimeNanos)
	}
	if p.DurationNanos <= 0 {
		bad.addf("duration_nanos is %d, want > 0 (Parca treats 0 as a non-delta profile)", p.DurationNanos)
	}
	for i, s := range p.Sample {
		if len(s.Location) == 0 {
			bad.addf("sample %d has no location", i)
		}
		for j, v := range s.Value {
			if v < 0 {
				bad.addf("sample %d value %d is negative: %d", i, j, v)
			}
		}
	}
}

// --- raw protobuf checks ----------------------------------------------------------------------------

type field struct {
	num    uint64
	wire   uint64
	varint uint64
	bytes  []byte
}

func readVarint(b []byte) (uint64, int, error) {
	var v uint64
	for i := 0; i < len(b) && i < 10; i++ {
		v |= uint64(b[i]&0x7f) << (7 * i)
		if b[i] < 0x80 {
			return v, i + 1, nil
		}
	}
	return 0, 0, errors.New("truncated or overlong varint")
}

// fields splits one message into its fields (varint, fixed and length-delimited wire types).
func fields(b []byte) ([]field, error) {
	var out []field
	for len(b) > 0 {
		key, n, err := readVarint(b)
		if err != nil {
			return nil, err
		}
		b = b[n:]
		f := field{num: key >> 3, wire: key & 7}
		switch f.wire {
		case 0:
			if f.varint, n, err = readVarint(b); err != nil {
				return nil, err
			}
		case 1, 5:
			n = 8
			if f.wire == 5 {
				n = 4
			}
			if len(b) < n {
				return nil, errors.New("truncated fixed-width field")
			}
		case 2:
			l, m, err := readVarint(b)
			if err != nil {
				return nil, err
			}
			if l > uint64(len(b)-m) {
				return nil, fmt.Errorf("field %d: length %d past the end", f.num, l)
			}
			f.bytes = b[m : m+int(l)]
			n = m + int(l)
		default:
			return nil, fmt.Errorf("field %d: unsupported wire type %d", f.num, f.wire)
		}
		b = b[n:]
		out = append(out, f)
	}
	return out, nil
}

// uints returns the scalar fields numbered num (varint) of a message.
func uints(b []byte, num uint64) ([]uint64, error) {
	fs, err := fields(b)
	if err != nil {
		return nil, err
	}
	var out []uint64
	for _, f := range fs {
		if f.num == num && f.wire == 0 {
			out = append(out, f.varint)
		}
	}
	return out, nil
}

func uintOf(b []byte, num uint64) (uint64, error) {
	vs, err := uints(b, num)
	if err != nil || len(vs) == 0 {
		return 0, err
	}
	return vs[len(vs)-1], nil // proto3: the last occurrence wins
}

type rawProfile struct {
	strings                        []string
	mappings, locations, functions [][]byte
	samples                        [][]byte
}

func decodeRaw(b []byte) (*rawProfile, error) {
	fs, err := fields(b)
	if err != nil {
		return nil, err
	}
	r := &rawProfile{}
	for _, f := range fs {
		if f.wire != 2 {
			continue
		}
		switch f.num {
		case 2:
			r.samples = append(r.samples, f.bytes)
		case 3:
			r.mappings = append(r.mappings, f.bytes)
		case 4:
			r.locations = append(r.locations, f.bytes)
		case 5:
			r.functions = append(r.functions, f.bytes)
		case 6:
			r.strings = append(r.strings, string(f.bytes))
		}
	}
	return r, nil
}

func checkIDs(what string, msgs [][]byte, bad *problems) {
	for i, m := range msgs {
		id, err := uintOf(m, 1)
		if err != nil {
			bad.addf("%s %d: %v", what, i, err)
		} else if id != uint64(i+1) {
			bad.addf("%s at index %d has id %d, want %d (ids must be 1..N in order)", what, i, id, i+1)
		}
	}
}

func checkStrings(r *rawProfile, bad *problems) {
	if len(r.strings) == 0 || r.strings[0] != "" {
		bad.addf(`string_table[0] must be ""`)
	}
	for i, s := range r.strings {
		if !utf8.ValidString(s) {
			bad.addf("string_table[%d] is not valid UTF-8: %q", i, s)
		}
	}
}

func checkLocationMappings(r *rawProfile, bad *problems) {
	for i, l := range r.locations {
		id, err := uintOf(l, 2)
		if err != nil {
			bad.addf("location %d: %v", i, err)
		} else if id > uint64(len(r.mappings)) {
			bad.addf("location %d refers to mapping %d of %d", i+1, id, len(r.mappings))
		}
	}
}

func (r *rawProfile) str(i uint64) string {
	if i < uint64(len(r.strings)) {
		return r.strings[i]
	}
	return ""
}

func checkLabel(r *rawProfile, sampleIdx int, label []byte, bad *problems) {
	fs, err := fields(label)
	if err != nil {
		bad.addf("sample %d label: %v", sampleIdx, err)
		return
	}
	var key, str, num, unit uint64
	for _, f := range fs {
		switch f.num {
		case 1:
			key = f.varint
		case 2:
			str = f.varint
		case 3:
			num = f.varint
		case 4:
			unit = f.varint
		}
	}
	name := r.str(key)
	switch {
	case key == 0:
		bad.addf("sample %d has a label without a key", sampleIdx)
	case str != 0 && (num != 0 || unit != 0):
		bad.addf("sample %d label %q is both string and numeric", sampleIdx, name)
	case str != 0 && !labelNameRx.MatchString(name):
		bad.addf("sample %d label name %q does not match %s", sampleIdx, name, labelNameRx)
	case len(r.str(str)) > maxLabelValue:
		bad.addf("sample %d label %q value is %d bytes, limit %d", sampleIdx, name, len(r.str(str)),
			maxLabelValue)
	}
}

func checkRaw(data []byte, bad *problems) {
	r, err := decodeRaw(data)
	if err != nil {
		bad.addf("raw decode: %v", err)
		return
	}
	checkStrings(r, bad)
	checkIDs("mapping", r.mappings, bad)
	checkIDs("location", r.locations, bad)
	checkIDs("function", r.functions, bad)
	checkLocationMappings(r, bad)
	for i, s := range r.samples {
		fs, err := fields(s)
		if err != nil {
			bad.addf("sample %d: %v", i, err)
			continue
		}
		for _, f := range fs {
			if f.num == 3 && f.wire == 2 {
				checkLabel(r, i, f.bytes, bad)
			}
		}
	}
}

// --- main -------------------------------------------------------------------------------------------

func readInput(name string) ([]byte, error) {
	if name == "-" {
		return io.ReadAll(os.Stdin)
	}
	return os.ReadFile(name)
}

func gunzip(data []byte) ([]byte, error) {
	if len(data) < 2 || data[0] != 0x1f || data[1] != 0x8b {
		return nil, errors.New("not gzip'd")
	}
	zr, err := gzip.NewReader(bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("gunzip: %v", err)
	}
	// ReadAll to the end also checks the gzip trailer (CRC and length)
	raw, err := io.ReadAll(zr)
	if err != nil {
		return nil, fmt.Errorf("gunzip: %v", err)
	}
	return raw, nil
}

func main() {
	asJSON := flag.Bool("json", false, "print a JSON summary of a valid profile on stdout")
	flag.StringVar(&profileType, "type", "cpu", "the profile's value type: cpu or offcpu")
	flag.Usage = func() {
		fmt.Fprintf(os.Stderr, "usage: %s [-json] [-type cpu|offcpu] FILE|-\n", os.Args[0])
		flag.PrintDefaults()
	}
	flag.Parse()
	if flag.NArg() != 1 {
		flag.Usage()
		os.Exit(2)
	}
	name := flag.Arg(0)
	data, err := readInput(name)
	if err != nil {
		fmt.Fprintf(os.Stderr, "pprofcheck: %v\n", err)
		os.Exit(2)
	}
	fail := func(bad problems) {
		for _, b := range bad {
			fmt.Fprintf(os.Stderr, "pprofcheck: %s: invalid: %s\n", name, b)
		}
		os.Exit(1)
	}
	if len(data) == 0 {
		fail(problems{"empty file"})
	}
	// anorak serves what Go's net/http/pprof serves: a gzip'd protobuf
	raw, err := gunzip(data)
	if err != nil {
		fail(problems{err.Error()})
	}
	p, err := profile.Parse(bytes.NewReader(data))
	if err != nil {
		// Parse falls back to legacy text formats and then reports only that; say why the protobuf failed
		if _, perr := profile.ParseUncompressed(raw); perr != nil {
			err = fmt.Errorf("%v (protobuf: %v)", err, perr)
		}
		fail(problems{err.Error()})
	}
	var bad problems
	if err := p.CheckValid(); err != nil {
		bad.addf("CheckValid: %v", err)
	}
	checkParsed(p, &bad)
	checkRaw(raw, &bad)
	if len(bad) > 0 {
		fail(bad)
	}
	if *asJSON {
		enc := json.NewEncoder(os.Stdout)
		enc.SetIndent("", " ")
		if err := enc.Encode(summarize(p)); err != nil {
			fmt.Fprintf(os.Stderr, "pprofcheck: %v\n", err)
			os.Exit(2)
		}
		return
	}
	fmt.Printf("%s: ok: %d samples, %d locations, %d functions, %d mappings\n", name, len(p.Sample),
		len(p.Location), len(p.Function), len(p.Mapping))
}
