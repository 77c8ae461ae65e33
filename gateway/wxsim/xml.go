package wxsim

import (
	"bytes"
	"strconv"
	"strings"
)

// xmlBuilder writes callback XML the way WeChat does: string fields in
// CDATA, numbers bare, no declaration, no escaping inside CDATA (so text
// carrying XML-illegal characters arrives raw, as from the real platform).
type xmlBuilder struct{ b bytes.Buffer }

func newXML() *xmlBuilder {
	x := &xmlBuilder{}
	x.b.WriteString("<xml>")
	return x
}

// cdata writes <name><![CDATA[v]]></name>, splitting any "]]>" in v.
func (x *xmlBuilder) cdata(name, v string) *xmlBuilder {
	x.b.WriteString("<" + name + "><![CDATA[")
	x.b.WriteString(strings.ReplaceAll(v, "]]>", "]]]]><![CDATA[>"))
	x.b.WriteString("]]></" + name + ">")
	return x
}

// num writes <name>v</name> for a number already formatted.
func (x *xmlBuilder) num(name, v string) *xmlBuilder {
	x.b.WriteString("<" + name + ">" + v + "</" + name + ">")
	return x
}

func (x *xmlBuilder) int(name string, v int64) *xmlBuilder {
	return x.num(name, strconv.FormatInt(v, 10))
}

func (x *xmlBuilder) float(name string, v float64) *xmlBuilder {
	return x.num(name, strconv.FormatFloat(v, 'f', 6, 64))
}

// header writes the fields every push starts with.
func (x *xmlBuilder) header(to, from string, created int64, msgType string) *xmlBuilder {
	return x.cdata("ToUserName", to).cdata("FromUserName", from).int("CreateTime", created).cdata("MsgType", msgType)
}

func (x *xmlBuilder) done() []byte {
	x.b.WriteString("</xml>")
	return x.b.Bytes()
}

// safeEnvelope is the body of a safe-mode push.
func safeEnvelope(to, encrypted string) []byte {
	return newXML().cdata("ToUserName", to).cdata("Encrypt", encrypted).done()
}

// compatibleEnvelope is the body of a compatible-mode push: the plaintext
// fields and the Encrypt element.
func compatibleEnvelope(plain []byte, encrypted string) []byte {
	i := bytes.LastIndex(plain, []byte("</xml>"))
	if i < 0 {
		i = len(plain)
	}
	var b bytes.Buffer
	b.Write(plain[:i])
	b.WriteString("<Encrypt><![CDATA[" + encrypted + "]]></Encrypt></xml>")
	return b.Bytes()
}
