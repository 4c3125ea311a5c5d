module github.com/shoptrail/shoptrail

go 1.26.8
