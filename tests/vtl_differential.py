#!/usr/bin/env python3
"""Differential oracle for Tollgate's VTL engine: renders a fixed list of
templates with airspeed (PyPI `airspeed-ext`, LocalStack's AWS-flavoured
Velocity engine) and prints them as JSON for `tests/templates.rs`.

Output: a JSON list of {"name", "template", "output", "error", "skip"}.
`template` is the full template both engines render (variables are set by a
prelude of `#set` directives, so no engine-specific mocking is needed);
`skip` names why a case is not compared: airspeed is known to differ from
AWS there (each reason is also listed in docs/templates.md).

Only plain VTL over strings, numbers, lists and maps is compared; the AWS
objects ($input, $util, $context) are covered by the AWS-recorded corpus in
tests/templates.rs instead.

Usage: python3 tests/vtl_differential.py  (needs `pip install airspeed-ext`)
"""

import json
import sys

import airspeed

# (name, template, variables, skip-reason or None)
CASES = [
    # --- text and references
    ("plain text", "<html></html>", {}, None),
    ("lonely dollar", "Hello $ and $1", {}, None),
    ("substitution", "Hello $name", {"name": "Chris"}, None),
    ("undefined is silent", "Hello $name!", {}, None),
    ("quiet defined", "Hello $!name", {"name": "world"}, None),
    ("quiet undefined", "Hello $!name", {}, None),
    ("formal", "Hello ${name}.", {"name": "World"}, None),
    ("trailing brace", "Hello $name}.", {"name": "World"}, None),
    ("trailing dot", "Hello $name.", {"name": "World"}, None),
    ("map property", "$m.a $m.b.c", {"m": {"a": "x", "b": {"c": "y"}}}, None),
    ("map bracket", "$m['a'] $m[\"a\"]", {"m": {"a": "x"}}, None),
    ("map key with colon", "$a.b.c['foo:bar']", {"a": {"b": {"c": {"foo:bar": "baz"}}}}, None),
    ("missing map key", " $user.name ", {"user": {"items": "1;2;3"}}, None),
    ("list index", "$l[1] $l[0]", {"l": ["foo", "bar"]}, None),
    ("nested list index", "$l[1][1]", {"l": ["foo", ["bar1", "bar2"]]}, None),
    ("list index then property", "$l[1].bar1", {"l": ["foo", {"bar1": "bar2"}]}, None),
    ("variable index", "#set($i = 1)$l[ $i ]", {"l": ["foo", "bar"]}, None),
    ("unicode", "$v", {"v": "Gr\u00fc\u00dfe \u00a312"}, None),
    ("colour spec", "<span style=\"color: #13ff93\">", {}, None),
    ("standalone hashes", "\"#\" <a href=\"#\">bob</a>", {}, None),
    # --- set, literals, operators
    ("set int", "#set ($value = 10)$value", {}, None),
    ("set string", "#set ($value = \"Steve\")$value", {}, None),
    ("set single quoted", "#set ($value = 'Steve')$value", {}, None),
    ("set bools", "#set ($v = true)$v|#set ($w = false)$w", {}, None),
    ("set empty strings", "#set( $v = \"\" )#set( $y = '' ).$v.$y.", {}, None),
    ("interpolation", "#set($hello=\"hello, $name is my name\")$hello", {"name": "Steve"}, None),
    ("no interpolation in single quotes", "#set($s = 'hi $name')$s", {"name": "Steve"}, None),
    ("escaped ref in string", "#set($hello=\"hello, \\$name is my name\")$hello", {"name": "Steve"}, None),
    ("json in single quotes", "#set($d = '{\"a\": 2}')$d", {}, None),
    ("doubled double quotes", "#set($d = \"{\"\"a\"\": 2}\")$d", {}, None),
    ("precedence mul sub", "#set($a = 5 * 4 - 2)$a", {}, None),
    ("precedence add mul", "#set($a = 2 + 5 * 4)$a", {}, None),
    ("parens", "#set($a = (5 + 4))$a|#set($b = ($a + 4) * 2)$b", {}, None),
    ("comparison result", "#set($a = 4 > 2 + 5)$a|#set($b = (5 + 4) > 2)$b", {}, None),
    ("division of integers", "#set($a = 7 / 2)$a", {}, None),
    ("division with a double", "#set($a = 100.0 / 50)$a", {}, None),
    ("modulus", "#set( $m = ($value % 2) )$m", {"value": 3}, None),
    ("fraction literal", "#set($x = .5*.1)$x", {}, None),
    ("negative division", "#set($a = -7 / 2)$a", {}, "Python floors integer division (-4); Java truncates (-3)"),
    ("negative modulus", "#set($a = -7 % 3)$a", {}, "Python's % takes the divisor's sign (2); Java's the dividend's (-1)"),
    ("double division", "#set($a = 7.0 / 2)$a", {}, "airspeed floors every division (3.0); Java divides doubles (3.5)"),
    ("string plus number", "#set($a = 'a' + 1)$a", {}, "Python raises on str + int; Velocity 1.7 concatenates"),
    ("assign alias", "#set($a = [1])#set($b = $a)#set($ignore = $b.add(2))$a.size()", {}, None),
    ("array literal", "blah\n#set($v = [\"Hello \", $person, \", your lucky number is \", 7])\n#foreach($x in $v)$x#end\n\nblah", {"person": "Chris"}, None),
    ("dictionary literal", "#set($a = {\"dog\": \"cat\" , \"horse\":15})$a.dog $a.horse", {}, None),
    ("dictionary with interpolation", "#set($a = {\"dog\": \"$horse\"})$a.dog", {"horse": "cow"}, None),
    ("empty dictionary", "#set($a = {})$a.toString()", {}, None),
    ("dict toString", "#set( $o = {'k1': 'v1', 'k2': 'v2'} )$o.toString()", {}, None),
    ("print list", "#set($l = ['one', 'two'])$l", {}, "airspeed prints Python reprs (['one', 'two']); Java prints [one, two]"),
    ("print map", "#set($m = {'a': 1})$m", {}, "airspeed prints Python reprs ({'a': 1}); Java prints {a=1}"),
    # --- if
    ("if true", "Hello #if ($name)your name is ${name}#end Good to see you", {"name": "Steve"}, None),
    ("if false", "Hello #if ($show)your name is ${name}#end Good", {"name": "Steve", "show": False}, None),
    ("nested if", "#if ($a)A.#if ($b) B.#end#end end", {"a": True, "b": True}, None),
    ("nested if inner false", "#if ($a)A.#if ($b) B.#end#end end", {"a": True, "b": False}, None),
    ("if undefined is true", "#if ($some_value)hide me#end", {}, None),
    ("if not undefined", "#if (!$some_value)x#end|", {}, None),
    ("else", "#if ($value) true #else false #end", {"value": False}, None),
    ("curly else", "#if($value)true#{else}false#end", {"value": False}, None),
    ("curly end", "#if($value)true#{end}monkey", {"value": True}, None),
    ("elseif", "#if ($v1) one #elseif ($v2) two #end", {"v1": False, "v2": True}, None),
    ("first elseif wins", "#if ($v1) one #elseif ($v2) two #elseif($v3) three #end", {"v1": False, "v2": False, "v3": True}, None),
    ("else after elseif", "#if ($v1) one #elseif ($v2) two #else three #end", {"v1": False, "v2": False}, None),
    ("greater than", "#foreach($v in [0, 1, 2])#if($v > 1)y#else n#end#if($v gt 1)y#else n#end,#end", {}, None),
    ("greater or equal", "#foreach($v in [0, 1, 2])#if($v >= 1)y#else n#end#if($v ge 1)y#else n#end,#end", {}, None),
    ("less than", "#foreach($v in [0, 1, 2])#if($v < 1)y#else n#end#if($v lt 1)y#else n#end,#end", {}, None),
    ("less or equal", "#foreach($v in [0, 1, 2])#if($v <= 1)y#else n#end#if($v le 1)y#else n#end,#end", {}, None),
    ("equality", "#foreach($v in [0, 1, 2])#if($v == 1)y#else n#end#if($v eq 1)y#else n#end#if($v != 1)y#else n#end#if($v ne 1)y#else n#end,#end", {}, None),
    ("string equality", "#if($a == 'x')same#end #if($a != 'y')differ#end", {"a": "x"}, None),
    ("or", "#if ( $a || $b )yes#end|#if ( $a or $c )yes#end", {"a": False, "b": False, "c": True}, None),
    ("and", "#if ( $a && $b )yes#end|#if ( $a and $c )yes#end", {"a": True, "b": False, "c": True}, None),
    ("parenthesised condition", "#if ( ($v1 == 1) && ($v2 == 2) )yes#end", {"v1": 1, "v2": 2}, None),
    ("multi-term condition", "#if ( $v1 == 1 && $v2 == 2 )yes#end", {"v1": 1, "v2": 3}, None),
    ("negation", "#if ( !$v )yes#end #if ( not $w )no#end", {"v": False, "w": True}, None),
    ("negated compound", "#if ( !$a && !$b )yes#end", {"a": False, "b": False}, None),
    ("empty string is true", "#set($e = '')#if($e)yes#else no#end", {}, "Python treats '' as false; Velocity 1.7's #if is false only for false and null"),
    ("zero is true", "#set($z = 0)#if($z)yes#else no#end", {}, "Python treats 0 as false; Velocity 1.7's #if is false only for false and null"),
    ("empty list is true", "#set($l = [])#if($l)yes#else no#end", {}, "Python treats [] as false; Velocity 1.7's #if is false only for false and null"),
    # --- foreach
    ("foreach plain", "#foreach ($name in $names)Hello you. #end", {"names": ["Chris", "Steve"]}, None),
    ("foreach var", "#foreach ($name in $names)Hello $name. #end", {"names": ["Chris", "Steve"]}, None),
    ("foreach skipped in false if", "#if ($f)#foreach ($n in $names)x#end#end", {"f": False, "names": ["a"]}, None),
    ("loop var gone after loop", "#foreach ($name in $names)$name #end$name", {"names": ["Chris", "Steve"]}, None),
    ("nested loops same var", "#foreach ($w in $g)$w to#foreach ($w in $n) $w#end. #end", {"g": ["Hello", "Goodbye"], "n": ["Chris", "Steve"]}, None),
    ("velocityCount", "#foreach ($w in $g)$velocityCount,#end", {"g": ["a", "b"]}, None),
    ("foreach.count", "#foreach ($w in $g)$foreach.count,#end", {"g": ["a", "b"]}, None),
    ("foreach.index", "#foreach ($w in $g)$foreach.index,#end", {"g": ["a", "b"]}, None),
    ("nested velocityCount", "#foreach ($w in $g)Outer $velocityCount#foreach ($x in $n), inner $velocityCount#end. #end", {"g": ["a", "b"], "n": ["c", "d"]}, None),
    ("nested foreach.index", "#foreach ($w in $g)Outer $foreach.index#foreach ($x in $n), inner $foreach.index#end. #end", {"g": ["a", "b"], "n": ["c", "d"]}, None),
    ("hasNext", "#foreach ($i in [1, 2, 3])$i. #if ($foreach.hasNext)yes#end, #end", {}, None),
    ("velocityHasNext", "#foreach ($i in [1, 2, 3])$i. #if ($velocityHasNext)yes#end, #end", {}, None),
    ("first and last", "#foreach ($i in [1, 2, 3])#if ($foreach.first)F#end#if ($foreach.last)L#end$i #end", {}, None),
    ("range", "#set($values = [1..5])#foreach($value in $values)$value,#end", {}, None),
    ("range backwards", "#foreach( $v in [2..-2] )$v,#end", {}, None),
    ("range to variable", "#foreach( $v in [1..$n] )$v#end", {"n": 4}, None),
    ("range lines", "#foreach( $v in [1..3] )$v\n#end", {}, None),
    ("outer var from loop", "#set($var = 1)#foreach ($i in $items)$var,#set($var = $i)#end$var", {"items": [2, 3, 4]}, None),
    ("loop var restored", "#set($i = 1)$i,#foreach ($i in [2, 3, 4])$i,#set($i = $i)#end$i", {}, None),
    ("nested $foreach scope", "#foreach ($j in [1,2])#foreach ($i in [3, 4])$foreach.count,#end$foreach.count|#end", {}, None),
    ("foreach undefined", "#foreach($value in $values)foo#end|", {}, None),
    ("foreach empty", "#foreach($value in [])foo#end|", {}, None),
    ("nested literal lists", "#set($v = [[\"Hello \", \"Steve\"], [\"Hello\", \" Chris\"]])#foreach($p in $v)#foreach($w in $p)$w#end. #end", {}, None),
    ("foreach over map", "#set($m = {'a': 1, 'b': 2})#foreach($v in $m)$v#end", {}, "airspeed iterates a map's keys; Velocity 1.7 iterates its values"),
    ("break", "#foreach($i in [1..5])#if($i == 3)#break#end$i#end", {}, "airspeed has no #break (it prints it); Velocity 1.7 has"),
    ("stop", "hello #stop world", {}, None),
    # --- methods
    ("list size", "#set($foo = [1,2,3]) $foo.size()", {}, None),
    ("list contains", "#set($foo = [1,2,3]) #if($foo.contains(1))found#end #if($foo.contains(10))found#end|", {}, None),
    ("list get", "#set($foo = [1,2,3]) $foo.get(1)", {}, None),
    ("list add", "#set($foo = [1,2,3])#set( $ignore = $foo.add('string value') )#foreach($item in $foo)$item,#end", {}, None),
    ("list isEmpty", "#set($foo = [1, 2, 3]) $foo.isEmpty()", {}, None),
    ("string length", "#set($foo = 'foobar123') $foo.length()", {}, None),
    ("string replaceAll", "#set($foo = 'foobar123bab') $foo.replaceAll('ba.', 'foo')", {}, None),
    ("string startsWith", "#set($foo = 'foobar123') #if($foo.startsWith('foo'))yes!#end #if($foo.startsWith('bar'))no!#end|", {}, None),
    ("string contains", "#set($foo = 'foobar123') #if($foo.contains('bar'))yes!#end", {}, None),
    ("string indexOf", "#set($foo = 'something') $foo.indexOf('e')", {}, None),
    ("string substring", "#set($foo = 'something') $foo.substring(3, 6)", {}, None),
    ("string matches", "#set( $s = '123456789' )$s.matches( '[0-9]*' )|#set( $t = 'd123' )$t.matches( '[0-9]*' )", {}, None),
    ("string matches date", "#set( $s = '2020-01-20T08:00:00.000Z' )$s.matches('^\\d{4}-\\d{2}-\\d{2}T\\d{2}:\\d{2}:00\\.000Z$')", {}, None),
    ("dict put", "#set( $ignore = $d.put('k', 'new value') )$ignore - $d.k", {"d": {"k": "initial value"}}, None),
    ("dict putAll", "#set( $ignore = $d.putAll({'k1': 'v3', 'k2': 'v2'}))$d.k1 - $d.k2", {"d": {"k1": "v1"}}, None),
    ("dict keySet loop", "#foreach($k in $d.keySet())$k=$d.get($k);#end", {"d": {"a": 1, "b": "x"}}, None),
    ("dict bracket assign", "#set($d = {})#set($key = 'bar')#set( $d[$key] = 'foo' )$d.toString()", {}, None),
    ("list bracket assign", "#set($l = ['one', 'two', 'three'])#set($i = 1)#set( $l[$i] = 'foo' )#foreach($x in $l)$x,#end", {}, None),
    ("put null then compare", "#set( $myMap = {} )#set($ignore = $myMap.put('k', null))#if(\"$myMap.k\" == \"\")empty#else has-value#end", {}, None),
    # --- macros and define
    ("macro no args", "#macro ( hello )hi#end#hello() #hello()", {}, None),
    ("macro one arg", "#macro ( bold $value )<strong>$value</strong>#end#bold ($text)", {"text": "hello"}, None),
    ("macro two args", "#macro ( pair $a $b )${a}+${b}#end#pair (1 'x') #pair($p, $p)", {"p": "q"}, None),
    ("macro calls macro", "#macro(inner $x)[$x]#end#macro(outer $y)#inner($y)#inner($y)#end#outer('z')", {}, None),
    ("define", "#define ( $hello)hi#end$hello()$hello()", {}, None),
    ("define with loop state", "#define ( $showindex )$foreach.index#end#foreach($x in [1,2,3])$showindex#end", {}, None),
    ("define late binding", "\n#define( $myfunc )$ctx#end\n#set( $ctx = 'foo' )\n$myfunc\n#set( $ctx = 'bar' )\n$myfunc\n", {}, None),
    # --- comments, escapes, whitespace
    ("line comment", "## comment\nStuff\nMore stuff## more comments $blah", {}, None),
    ("block comment", "Stuff#*\n more comments *#\n and more stuff", {}, "airspeed eats the newline after *#; AWS keeps it (recorded)"),
    ("escaped reference", "\\$email", {"email": "foo"}, None),
    ("double backslash reference", "\\\\$email", {"email": "foo"}, "airspeed keeps both backslashes; AWS prints one (recorded)"),
    ("if line gobbling", "\n#if(true)\nhello##\n#end", {}, None),
    ("newlines around directives", "hello #if ($a)${n}.\n#if($b)Happy Birthday\n#end.\n#end Off out later?", {"a": True, "b": True, "n": "Steve"}, None),
    ("set line gobbling", "a\n#set($x = 1)\nb $x\n", {}, None),
    ("set keeps indentation", "a\n    #set($x = 1)\n    b", {}, None),
    ("end line gobbling", "#if(true)\nx\n#end\ny", {}, None),
    ("else line gobbling", "#if(false)\nx\n#else\ny\n#end\nz", {}, "airspeed keeps the newline after #else; Velocity 1.7's #else token includes it"),
    ("foreach line gobbling", "#foreach($i in [1, 2])\n$i\n#end\n", {}, "airspeed keeps the newline after #foreach(...); Velocity 1.7's ')' token includes it"),
]


def literal(value):
    """A VTL literal both engines parse the same way."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        if "'" in value:
            raise ValueError("keep quotes out of test strings")
        return "'" + value + "'"
    if isinstance(value, list):
        return "[" + ", ".join(literal(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(literal(k) + ": " + literal(v) for k, v in value.items()) + "}"
    raise ValueError("unsupported value %r" % (value,))


def main():
    results = []
    for name, template, variables, skip in CASES:
        prelude = "".join("#set($%s = %s)" % (k, literal(v)) for k, v in variables.items())
        full = prelude + template
        output, error = None, None
        try:
            output = airspeed.Template(full).merge({})
        except Exception as e:  # noqa: BLE001 - any airspeed failure is data
            error = "%s: %s" % (type(e).__name__, e)
        results.append({"name": name, "template": full, "output": output, "error": error, "skip": skip})
    json.dump(results, sys.stdout, indent=1)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
