// The seed flow (loadtest/flows/seed.yaml) as a Restate service: the JSONata
// transform of an order in one durable step (`ctx.run`), then the output in a
// second, the same two steps Peregrine journals for the flow's two tasks. The
// expression is compiled once, as Peregrine compiles it once per flow.
import * as restate from "@restatedev/restate-sdk";
import jsonata from "jsonata";

const expression = jsonata(`{
  "order_id": order_id,
  "customer_name": first_name & ' ' & last_name,
  "address": address.city & ', ' & address.country,
  "total_price": $sum(items.(quantity * price_per_unit))
}`);

type Order = Record<string, unknown>;
type Transformed = Record<string, unknown>;

const seed = restate.service({
  name: "seed",
  handlers: {
    run: async (ctx: restate.Context, input: { order: Order }) => {
      const value = await ctx.run("transform", async () => (await expression.evaluate(input.order)) as Transformed);
      return await ctx.run("hello", async () => ({ log: value }));
    },
  },
});

const port = Number(process.env.PORT ?? "9080");
restate.serve({ services: [seed], port });
