package docker

// objects cuts a JSON array of objects into its elements, appended to out
// in body's memory, without decoding them: it follows only the strings
// (and their escapes), the nesting and the commas between the elements.
// ok is false where body is not such an array; the caller then decodes it
// whole, and gets the decoder's error. An element it returns is not
// checked inside; decoding it does that.
func objects(body []byte, out [][]byte) (_ [][]byte, ok bool) {
	i := skipSpace(body, 0)
	if i == len(body) || body[i] != '[' {
		return nil, false
	}
	i = skipSpace(body, i+1)
	if i < len(body) && body[i] == ']' {
		return end(body, i, out)
	}
	for {
		// An object, from its brace to the one that closes it.
		if i == len(body) || body[i] != '{' {
			return nil, false
		}
		start, depth, inString := i, 0, false
		for ; i < len(body); i++ {
			c := body[i]
			if inString {
				switch c {
				case '\\':
					i++
				case '"':
					inString = false
				}
				continue
			}
			switch c {
			case '"':
				inString = true
			case '{', '[':
				depth++
			case '}', ']':
				depth--
			}
			if depth == 0 {
				break
			}
		}
		if i >= len(body) {
			return nil, false
		}
		out = append(out, body[start:i+1])
		// Then a comma and the next, or the end of the array.
		i = skipSpace(body, i+1)
		if i == len(body) {
			return nil, false
		}
		switch body[i] {
		case ',':
			i = skipSpace(body, i+1)
		case ']':
			return end(body, i, out)
		default:
			return nil, false
		}
	}
}

// end is out if the array's closing bracket at i ends body, but for white
// space.
func end(body []byte, i int, out [][]byte) ([][]byte, bool) {
	if skipSpace(body, i+1) != len(body) {
		return nil, false
	}
	return out, true
}

// skipSpace is the index of the first byte from i on that is not JSON
// white space.
func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}
