package clickhouse

import (
	"errors"

	ch "github.com/ClickHouse/clickhouse-go/v2"
)

// poisonCodes are ClickHouse exception codes that blame the data of a row:
// retrying the same rows fails the same way, so the sink splits the batch
// and keeps the rows that fail alone as dead letters. Every other error
// (network, timeouts 159/209, memory 241, too many parts 252, a missing
// table or column) is taken as transient: the batch is retried and nothing
// is committed past it, so a schema problem stalls the partition (visibly,
// in the logs and the lag) instead of dead-lettering everything.
var poisonCodes = map[int32]string{
	6:   "CANNOT_PARSE_TEXT",
	26:  "CANNOT_PARSE_QUOTED_STRING",
	27:  "CANNOT_PARSE_INPUT_ASSERTION_FAILED",
	38:  "CANNOT_PARSE_DATE",
	41:  "CANNOT_PARSE_DATETIME",
	53:  "TYPE_MISMATCH",
	69:  "ARGUMENT_OUT_OF_BOUND",
	70:  "CANNOT_CONVERT_TYPE",
	72:  "CANNOT_PARSE_NUMBER",
	117: "INCORRECT_DATA",
	131: "TOO_LARGE_STRING_SIZE",
	321: "VALUE_IS_OUT_OF_RANGE_OF_DATA_TYPE",
	395: "FUNCTION_THROW_IF_VALUE_IS_NON_ZERO",
}

// exceptionCode returns the code of a ClickHouse server exception in err.
func exceptionCode(err error) (int32, bool) {
	var ex *ch.Exception
	if errors.As(err, &ex) {
		return ex.Code, true
	}
	return 0, false
}

// IsPoison tells whether err is a server exception that blames the rows.
func IsPoison(err error) bool {
	code, ok := exceptionCode(err)
	if !ok {
		return false
	}
	_, poison := poisonCodes[code]
	return poison
}
