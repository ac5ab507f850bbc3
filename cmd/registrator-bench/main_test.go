package main

import (
	"slices"
	"testing"
)

func TestNumbers(t *testing.T) {
	for _, c := range []struct {
		list string
		want []int
		bad  bool
	}{
		{list: "500,100", want: []int{100, 500}},
		{list: " 1000 ", want: []int{1000}},
		{list: "", want: nil},
		{list: "  ", want: nil},
		{list: "100,", bad: true},
		{list: "0", bad: true},
		{list: "-5", bad: true},
		{list: "ten", bad: true},
	} {
		got, err := numbers(c.list)
		if (err != nil) != c.bad || !slices.Equal(got, c.want) {
			t.Errorf("numbers(%q) = %v, %v; want %v, error %v", c.list, got, err, c.want, c.bad)
		}
	}
}
