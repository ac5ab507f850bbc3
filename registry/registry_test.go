package registry

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/registrator/registrator/bridge"
	"github.com/registrator/registrator/registry/registrytest"
)

func TestOpenErrors(t *testing.T) {
	for _, tc := range []struct{ uri, err string }{
		{"127.0.0.1:8500", "has no scheme, e.g. consul://127.0.0.1:8500"},
		{"", "has no scheme"},
		{"bob:s3cret@h:1", `registry URI "h:1" has no scheme`},
		{"nosuch://h:1", `unknown registry scheme "nosuch" in nosuch://h:1`},
		{"nosuch://bob:s3cret@h:1", `unknown registry scheme "nosuch" in nosuch://h:1`},
		{"consul://h:1/prefix", "takes no prefix"},
		{"etcd://bob:s3cret@127.0.0.1:1/x?bogus=1", `etcd: etcd://127.0.0.1:1/x: unknown option "bogus"`},
		{"consulkv://127.0.0.1:1", "no key prefix"},
		{"zookeeper://127.0.0.1:1", "base path"},
		{"skydns2://127.0.0.1:1", "no domain"},
		{"consul://%zz", "registry URI"},
		{"etcd://bob:s3cret@h:1/%zz", `registry URI: invalid URL escape "%zz"`},
	} {
		_, err := Open(tc.uri, bridge.BackendOptions{Owner: "o", Log: registrytest.Quiet()})
		if err == nil || !strings.Contains(err.Error(), tc.err) {
			t.Errorf("Open(%q) = %v, want an error containing %q", tc.uri, err, tc.err)
			continue
		}
		if e := err.Error(); strings.Contains(e, "s3cret") || strings.Contains(e, "bob") || strings.Contains(e, "xxxxx") || strings.Contains(e, "\n") {
			t.Errorf("Open(%q) error %q shows the user information or spans lines", tc.uri, err)
		}
	}
}

// registrator ignored the user information of a consul, consulkv or
// zookeeper URI: a run line with one keeps starting, with a warning that
// says where credentials go and shows none of them.
func TestUserInformationWhereNoneIsTakenIsIgnoredWithAWarning(t *testing.T) {
	for _, tc := range []struct{ uri, warning string }{
		{"consul://bob:s3cret@h:1", "consul://h:1: a consul URI takes no user name or password: the one given is ignored (Consul's ACL token: CONSUL_HTTP_TOKEN"},
		{"consulkv://bob:s3cret@h:1/p", "consulkv://h:1/p: a consulkv URI takes no user name or password: the one given is ignored"},
		{"zookeeper://bob:s3cret@h:1/p", "zookeeper://h:1/p: a zookeeper URI takes no user name or password: the one given is ignored"},
	} {
		var out bytes.Buffer
		log := logrus.New()
		log.SetOutput(&out)
		b, err := Open(tc.uri, bridge.BackendOptions{Owner: "o", Log: logrus.NewEntry(log)})
		if err != nil {
			t.Errorf("Open(%q): %v, want it opened", tc.uri, err)
			continue
		}
		b.Close()
		if got := out.String(); !strings.Contains(got, tc.warning) || strings.Contains(got, "s3cret") || strings.Contains(got, "bob") {
			t.Errorf("Open(%q) logged %q, want a warning containing %q and no user information", tc.uri, got, tc.warning)
		}
	}
}

// A password with a reserved character left as it is puts part of
// itself in the host, the path, the query or the fragment; such a URI is
// refused, with a message that names none of it.
func TestParseRefusesUserInformationThatDidNotParse(t *testing.T) {
	for _, tc := range []struct{ name, uri, password string }{
		{"a / in the password", "etcd://bob:Xk9/Qz7@127.0.0.1:2379/prefix", "Xk9/Qz7"},
		{"a / after digits: a valid port", "etcd://bob:12/Qz7@127.0.0.1:2379/prefix", "12/Qz7"},
		{"a ? in the password", "etcd://bob:Xk9?Qz7@127.0.0.1:2379/prefix", "Xk9?Qz7"},
		{"a ? after digits", "etcd://bob:12?Qz7@127.0.0.1:2379/prefix", "12?Qz7"},
		{"a # in the password", "etcd://bob:Xk9#Qz7@127.0.0.1:2379/prefix", "Xk9#Qz7"},
		{"a # after digits", "etcd://bob:12#Qz7@127.0.0.1:2379/prefix", "12#Qz7"},
		{"a % not followed by hex", "etcd://bob:Xk9%zzQz7@127.0.0.1:2379/prefix", "Xk9%zzQz7"},
		{"a space", "etcd://bob:Xk9 Qz7@127.0.0.1:2379/prefix", "Xk9 Qz7"},
		{"a / in the user name too", "etcd://a@bob:12/Qz7@127.0.0.1:2379/prefix", "12/Qz7"},
		{"in the host list", "etcd://bob:12/Qz7@127.0.0.1:2379,127.0.0.2:2379/prefix", "12/Qz7"},
		{"skydns2", "skydns2://bob:Xk9/Qz7@127.0.0.1:2379/skydns.local", "Xk9/Qz7"},
		{"consul", "consul://bob:12/Qz7@127.0.0.1:8500", "12/Qz7"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse(tc.uri)
			if err == nil || !strings.Contains(err.Error(), "percent-encode the user name and password") {
				t.Fatalf("Parse: %v, want the advice to percent-encode", err)
			}
			for _, part := range append(strings.FieldsFunc(tc.password, func(r rune) bool { return strings.ContainsRune("/?# %", r) }), "bob") {
				if strings.Contains(err.Error(), part) {
					t.Errorf("error %q shows %q, part of the user information", err, part)
				}
			}
			if _, err := Open(tc.uri, bridge.BackendOptions{Owner: "o", Log: registrytest.Quiet()}); err == nil {
				t.Error("Open accepts it")
			}
			if d := DisplayURI(tc.uri); strings.Contains(d, "Qz7") || strings.Contains(d, "bob") {
				t.Errorf("DisplayURI = %q", d)
			}
		})
	}
	for _, tc := range []struct{ uri, password, display string }{
		{"etcd://user:pa%2Fss@127.0.0.1:2379/prefix", "pa/ss", "etcd://127.0.0.1:2379/prefix"},
		{"etcd://user:pa%3Fss%23x%25y%20z@h:1/p", "pa?ss#x%y z", "etcd://h:1/p"},
		{"etcd://user:p@ss@h:1,h:2/p", "p@ss", "etcd://h:1,h:2/p"}, // an unencoded @ in the password: the last @ ends it
		{"etcd://user:p:ss@h:1/p", "p:ss", "etcd://h:1/p"},
		{"etcd://h:1/a%40b", "", "etcd://h:1/a@b"}, // an encoded @ in the path
	} {
		u, err := Parse(tc.uri)
		if err != nil {
			t.Errorf("Parse(%q): %v", tc.uri, err)
			continue
		}
		if pw, _ := u.User.Password(); pw != tc.password {
			t.Errorf("Parse(%q): password %q, want %q", tc.uri, pw, tc.password)
		}
		if d := Display(u); d != tc.display {
			t.Errorf("Display(Parse(%q)) = %q, want %q", tc.uri, d, tc.display)
		}
	}
}

func TestDisplay(t *testing.T) {
	for _, tc := range []struct{ uri, want string }{
		{"consul://127.0.0.1:8500", "consul://127.0.0.1:8500"},
		{"consul-unix:///var/run/consul.sock", "consul-unix:///var/run/consul.sock"},
		{"etcd://root:pw@a:1,b:2/services?format=json&ca=/ca.pem", "etcd://a:1,b:2/services"},
		{"etcd://root@a:1/services", "etcd://a:1/services"},
		{"etcd://:pw@a:1/services", "etcd://a:1/services"},
		{"consul://[::1]:8500", "consul://[::1]:8500"},
	} {
		if got := DisplayURI(tc.uri); got != tc.want {
			t.Errorf("DisplayURI(%q) = %q, want %q", tc.uri, got, tc.want)
		}
	}
	for _, bad := range []string{"etcd://root:p/w@h:1/x", "%%://root:p/w@h", "etcd://root:pw@h:1/%zz"} {
		if got := DisplayURI(bad); strings.Contains(got, "p/w") || strings.Contains(got, "root") || strings.Contains(got, "pw") {
			t.Errorf("DisplayURI(%q) = %q", bad, got)
		}
	}
}

// Every scheme, given a user name and password, shows neither in its
// errors, its log (at debug level) nor its Display, opened and pinged at
// an address where nothing listens.
func TestNoSchemeShowsItsPassword(t *testing.T) {
	const user, password = "registrator-user", "S3cret-Pw"
	for _, s := range Schemes() {
		t.Run(s.Name, func(t *testing.T) {
			var path string
			switch {
			case s.Name == "consul-unix":
				path = "/nonexistent/consul.sock"
			case strings.HasPrefix(s.Name, "skydns2"):
				path = "/skydns.local"
			case !strings.HasPrefix(s.Name, "consul") || strings.HasPrefix(s.Name, "consulkv"):
				path = "/services"
			}
			uri := s.Name + "://" + user + ":" + password + "@127.0.0.1:1" + path
			var logs bytes.Buffer
			l := logrus.New()
			l.SetOutput(&logs)
			l.SetLevel(logrus.DebugLevel)
			var out []string
			b, err := Open(uri, bridge.BackendOptions{Owner: "o", Log: logrus.NewEntry(l)})
			switch {
			case err != nil:
				t.Fatalf("Open: %v", err)
			default:
				ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
				err := b.Ping(ctx)
				cancel()
				if err == nil {
					t.Fatal("Ping reached 127.0.0.1:1")
				}
				out = append(out, err.Error())
				if err := b.Close(); err != nil {
					out = append(out, err.Error())
				}
			}
			out = append(out, logs.String(), DisplayURI(uri))
			for _, o := range out {
				if strings.Contains(o, password) || strings.Contains(o, user) || strings.Contains(o, "xxxxx") {
					t.Errorf("output shows the user information: %q", o)
				}
			}
		})
	}
}

// No URI makes Open panic, hang or show its user information in its
// error or its log; a backend it returns can be closed. Open does no I/O,
// so fuzzing sends nothing anywhere.
//
// The oracle for the user information: what Open says (error and log) is
// the same when everything between :// and the last @ is replaced by
// other characters of the same kinds (digits by digits, hex letters by hex
// letters, other letters by other letters), so that the URI parses the
// same way. A difference means Open printed something of it.
func FuzzOpen(f *testing.F) {
	for _, s := range []string{
		"consul://127.0.0.1:8500", "consul-tls://h:8501", "consul-unix:///var/run/consul.sock", "consul-unix://",
		"etcd://a:1,b:2/p?format=json", "etcd+tls://h:1/p?ca=/x&cert=/y&key=/z", "etcd://u:secret@h:1/p",
		"skydns2://h:1/skydns.local", "consulkv://h:1/p?marks=m", "zookeeper://h:1,h:2/base?marks=/m",
		"etcd://h:1/p?marks=", "zookeeper://h:1/a//b", "skydns2://h:1/a..b", "consul://[::1]:8500", "::", "%",
		"etcd://user:pa/ss@h:1/p", "etcd://user:12/ss@h:1/p", "etcd://user:12?ss@h:1/p", "etcd://user:12#ss@h:1/p",
		"etcd://user:p@ss@h:1/p", "etcd://user:pa%2Fss@h:1/p?bogus=1", "etcd://user:pa%zz@h:1/p", "consul://user:pw@h:1",
		"skydns2://user:12/ss@h:1/x?y", "zookeeper://u:p@h:1/b", "nosuch://u:p@h:1", "u:p@h:1", "etcd://u:p@[::1%25en0]:1/p",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, uri string) {
		said := openSays(t, uri)
		if strings.Contains(strings.TrimSuffix(said, "\n"), "\n") {
			t.Fatalf("Open(%q) says more than one line: %q", uri, said)
		}
		other, ok := otherUserInfo(uri)
		if !ok {
			return
		}
		if said2 := openSays(t, other); said2 != said {
			t.Fatalf("what Open says depends on the user information:\n%q: %q\n%q: %q", uri, said, other, said2)
		}
	})
}

// openSays opens uri and closes the backend; it returns the error and
// whatever was logged meanwhile, without timestamps.
func openSays(t *testing.T, uri string) string {
	var logs bytes.Buffer
	l := logrus.New()
	l.SetOutput(&logs)
	l.SetLevel(logrus.DebugLevel)
	l.SetFormatter(&logrus.TextFormatter{DisableTimestamp: true, DisableColors: true})
	b, err := Open(uri, bridge.BackendOptions{Owner: "o", Log: logrus.NewEntry(l)})
	if err != nil {
		return err.Error() + "\n" + logs.String()
	}
	if err := b.Close(); err != nil {
		t.Fatalf("Close after Open(%q): %v", uri, err)
	}
	return logs.String()
}

// otherUserInfo is uri with every byte between :// and the last @ that is
// a digit or a letter replaced by another of its kind; false when uri has
// no such part.
func otherUserInfo(uri string) (string, bool) {
	i := strings.Index(uri, "://")
	j := strings.LastIndexByte(uri, '@')
	if i < 0 || j < i+3 {
		return "", false
	}
	b := []byte(uri)
	for k := i + 3; k < j; k++ {
		c := b[k]
		switch {
		case '0' <= c && c <= '9':
			b[k] = '0' + (c-'0'+1)%10
		case 'a' <= c && c <= 'f':
			b[k] = 'a' + (c-'a'+1)%6
		case 'g' <= c && c <= 'z':
			b[k] = 'g' + (c-'g'+1)%20
		case 'A' <= c && c <= 'F':
			b[k] = 'A' + (c-'A'+1)%6
		case 'G' <= c && c <= 'Z':
			b[k] = 'G' + (c-'G'+1)%20
		}
	}
	return string(b), true
}
