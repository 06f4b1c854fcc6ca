//! VTL mapping templates: compile cost and render cost of two realistic
//! templates.
//!
//! * `reshape`: a ~1 KB request template that reshapes an order (a ~1.5 KB
//!   JSON body) for a backend with `$input.path`, `$input.json`,
//!   `$util.escapeJavaScript`, `#if` and `$context`/`$stageVariables`.
//! * `foreach100`: a `#foreach` over 100 items of the body producing JSON.
//!
//! Each template is rendered once outside the timed loop and checked, so a
//! template that fails cannot be measured by mistake. Render throughput is
//! in output bytes.
//!
//! Run: `cargo bench --bench template -- --warm-up-time 1 --measurement-time 3`

use std::collections::BTreeMap;
use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use tollgate::vtl::{compile, Input, Limits};

const RESHAPE: &str = r##"#set($order = $input.path('$'))
#set($customer = $order.customer)
{
  "requestId": "$context.requestId",
  "stage": "$context.stage",
  "backend": "$stageVariables.backend",
  "orderId": "$util.escapeJavaScript($order.id)",
  "customer": {
    "id": "$customer.id",
    "name": "$util.escapeJavaScript($customer.name).replaceAll("\\'", "'")",
    "email": "$util.escapeJavaScript($customer.email)",
#if($customer.vip == true)
    "tier": "gold",
#else
    "tier": "standard",
#end
    "address": $input.json('$.customer.address')
  },
  "currency": "$order.currency",
  "itemCount": $order.items.size(),
  "firstSku": "$input.path('$.items[0].sku')",
  "total": $order.total,
#if($order.coupon && $order.coupon != "")
  "coupon": "$util.escapeJavaScript($order.coupon)",
#end
  "notes": "$util.escapeJavaScript($order.notes).replaceAll("\\'", "'")",
  "source": "$input.params('source')",
  "userAgent": "$util.escapeJavaScript($input.params('User-Agent'))",
  "items": $input.json('$.items'),
  "tags": $input.json('$.tags'),
  "raw": "$util.base64Encode($order.id)"
}
"##;

const FOREACH: &str = r##"#set($items = $input.path('$.items'))
{
  "count": $items.size(),
  "lines": [
#foreach($item in $items)
    {"n": $foreach.count, "sku": "$item.sku", "qty": $item.qty, "price": $item.price, "name": "$util.escapeJavaScript($item.name).replaceAll("\\'", "'")"#if($item.qty > 10), "bulk": true#end}#if($foreach.hasNext),#end

#end
  ]
}
"##;

fn order_body(items: usize) -> String {
    let lines: Vec<String> = (0..items)
        .map(|i| {
            format!(
                r#"{{"sku":"SKU-{i:05}","name":"Widget {i} 'deluxe'","qty":{},"price":{}.99}}"#,
                i % 17,
                10 + i % 90
            )
        })
        .collect();
    format!(
        r#"{{"id":"ord-8f14e45f","currency":"EUR","total":1234.5,"coupon":"SPRING","notes":"Leave at the door, it's fine","customer":{{"id":"c-42","name":"Zoë O'Brien","email":"zoe@example.com","vip":true,"address":{{"street":"1 Main St","city":"Dublin","zip":"D01"}}}},"tags":["gift","express"],"items":[{}]}}"#,
        lines.join(",")
    )
}

struct Req {
    body: String,
    path: Vec<(String, String)>,
    query: Vec<(String, String)>,
    headers: Vec<(String, String)>,
    stage: BTreeMap<String, String>,
    context: BTreeMap<String, String>,
}

impl Req {
    fn new(body: String) -> Req {
        let kv = |list: &[(&str, &str)]| -> Vec<(String, String)> {
            list.iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        Req {
            body,
            path: kv(&[("orderId", "ord-8f14e45f")]),
            query: kv(&[("source", "web"), ("dryRun", "false")]),
            headers: kv(&[
                ("Host", "api.example.com"),
                ("User-Agent", "Mozilla/5.0 (X11; Linux x86_64)"),
                ("Content-Type", "application/json"),
            ]),
            stage: [("backend", "orders.internal")]
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            context: [
                ("requestId", "c6af9ac6-7b61-11e6-9a41-93e8deadbeef"),
                ("stage", "prod"),
            ]
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        }
    }

    fn input(&self) -> Input<'_> {
        Input {
            body: self.body.as_bytes(),
            path: &self.path,
            query: &self.query,
            headers: &self.headers,
            stage_variables: &self.stage,
            context: &self.context,
        }
    }
}

fn bench(c: &mut Criterion, name: &str, template: &str, req: &Req) {
    let limits = Limits::default();
    let t = compile(template).unwrap_or_else(|e| panic!("{name}: {e}"));
    let out = t
        .render(&req.input(), &limits)
        .unwrap_or_else(|e| panic!("{name}: {e}"));
    serde_json::from_str::<serde_json::Value>(&out.body)
        .unwrap_or_else(|e| panic!("{name} output is not JSON ({e}): {}", out.body));

    let mut group = c.benchmark_group(name);
    group.throughput(Throughput::Bytes(template.len() as u64));
    group.bench_function("compile", |b| b.iter(|| compile(black_box(template))));
    group.throughput(Throughput::Bytes(out.body.len() as u64));
    group.bench_function("render", |b| {
        b.iter(|| t.render(black_box(&req.input()), &limits))
    });
    group.finish();
}

fn templates(c: &mut Criterion) {
    let small = Req::new(order_body(3));
    bench(c, "reshape", RESHAPE, &small);
    let hundred = Req::new(order_body(100));
    bench(c, "foreach100", FOREACH, &hundred);
}

criterion_group!(benches, templates);
criterion_main!(benches);
