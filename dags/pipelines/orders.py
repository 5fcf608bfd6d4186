"""Orders: raw orders -> cleaned orders -> daily revenue, a job, a daily schedule and a quality check.

The data is generated deterministically so the example runs anywhere (no credentials, no
network); swap ``raw_orders`` for a read from your warehouse or bucket.
"""

import random
from collections import defaultdict
from datetime import date, timedelta

import dagster as dg

START = date(2026, 1, 1)


@dg.asset(group_name="orders", description="Orders as they arrive, including invalid ones.")
def raw_orders(context: dg.AssetExecutionContext) -> list[dict]:
    rng = random.Random(42)  # noqa: S311 - sample data, not security
    orders = [
        {
            "order_id": n,
            "day": (START + timedelta(days=n % 14)).isoformat(),
            "amount": round(rng.uniform(-20, 250), 2),
            "customer": f"c{rng.randint(1, 40):03d}",
        }
        for n in range(500)
    ]
    context.add_output_metadata({"rows": len(orders)})
    return orders


@dg.asset(group_name="orders", description="Orders with a positive amount and a customer.")
def cleaned_orders(context: dg.AssetExecutionContext, raw_orders: list[dict]) -> list[dict]:
    cleaned = [o for o in raw_orders if o["amount"] > 0 and o["customer"]]
    context.add_output_metadata({"rows": len(cleaned), "dropped": len(raw_orders) - len(cleaned)})
    return cleaned


@dg.asset(group_name="orders", description="Revenue per day.")
def daily_revenue(context: dg.AssetExecutionContext, cleaned_orders: list[dict]) -> dict[str, float]:
    revenue: dict[str, float] = defaultdict(float)
    for order in cleaned_orders:
        revenue[order["day"]] += order["amount"]
    result = {day: round(total, 2) for day, total in sorted(revenue.items())}
    context.add_output_metadata({"days": len(result), "total": round(sum(result.values()), 2)})
    return result


@dg.asset_check(asset=cleaned_orders, description="No order with a non-positive amount survives cleaning.")
def cleaned_orders_have_positive_amounts(cleaned_orders: list[dict]) -> dg.AssetCheckResult:
    bad = sum(1 for o in cleaned_orders if o["amount"] <= 0)
    return dg.AssetCheckResult(passed=bad == 0, metadata={"non_positive": bad})


orders_job = dg.define_asset_job(
    "orders_job",
    selection=dg.AssetSelection.groups("orders"),
    description="Rebuild the orders assets.",
)

orders_daily = dg.ScheduleDefinition(
    name="orders_daily",
    job=orders_job,
    cron_schedule="0 6 * * *",
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.STOPPED,
)
