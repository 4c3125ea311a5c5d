package processor

// ReferenceEventJSON returns the event of BenchmarkDecode, whose decoding
// by encoding/json is the pipeline benchmark's reference work.
func ReferenceEventJSON() []byte { return benchEventJSON() }
