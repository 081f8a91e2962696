-- The next run of a pg_cron schedule, in SQL, so the dashboard can show when each job is due without leaving the
-- database. pg_cron's semantics (vixie cron's): five UTC fields, lists, ranges,
-- steps, month/day names, 7 = Sunday, and day-of-month OR day-of-week when both are restricted (vixie cron).

-- why: one cron field ('*/5', '1-5', 'mon,wed', '10-40/15') as the sorted set of values it allows, or null when it
-- cannot be parsed. A bare 'n/step' means n through the field's maximum, as in vixie cron.
create or replace function maintenance.cron_field_values(field text, lo integer, hi integer)
returns integer[]
language plpgsql
immutable
set search_path = ''
as $$
declare
  part text;
  m text[];
  a integer;
  b integer;
  step integer;
  result integer[] := '{}';
begin
  if field is null or field = '' then
    return null;
  end if;
  foreach part in array string_to_array(field, ',') loop
    m := regexp_match(part, '^(\*|[0-9]{1,2}(?:-[0-9]{1,2})?)(?:/([0-9]{1,2}))?$');
    if m is null then
      return null;
    end if;
    step := coalesce(m[2]::integer, 1);
    if m[1] = '*' then
      a := lo;
      b := hi;
    elsif position('-' in m[1]) > 0 then
      a := split_part(m[1], '-', 1)::integer;
      b := split_part(m[1], '-', 2)::integer;
    else
      a := m[1]::integer;
      b := case when m[2] is null then a else hi end;
    end if;
    if a < lo or b > hi or a > b or step < 1 then
      return null;
    end if;
    result := result || array(select generate_series(a, b, step));
  end loop;
  return array(select distinct v from unnest(result) v order by v);
end;
$$;
revoke all on function maintenance.cron_field_values(text, integer, integer) from public, anon, authenticated;
grant execute on function maintenance.cron_field_values(text, integer, integer) to service_role;

-- why: when a pg_cron schedule next fires strictly after `after` (UTC), for the dashboard's "next due" and the
-- missed-run judgement (maintenance.job_health, the one place that rule is written). Macros (@hourly, @daily, @weekly, @monthly,
-- @yearly) are expanded; pg_cron's '<n> seconds' form is `after` + n seconds; anything unparsable gives null.
create or replace function maintenance.cron_next_run(schedule text, after timestamptz)
returns timestamptz
language plpgsql
immutable
set search_path = ''
as $$
declare
  s text := lower(btrim(coalesce(schedule, '')));
  f text[];
  mins integer[];
  hrs integer[];
  doms integer[];
  mons integer[];
  dows integer[];
  dom_star boolean;
  dow_star boolean;
  start_at timestamp := date_trunc('minute', after at time zone 'UTC') + interval '1 minute';
  d date;
  day_ok boolean;
  hit timestamp;
  names text[] := array['jan', 'feb', 'mar', 'apr', 'may', 'jun', 'jul', 'aug', 'sep', 'oct', 'nov', 'dec'];
  day_names text[] := array['sun', 'mon', 'tue', 'wed', 'thu', 'fri', 'sat'];
  i integer;
begin
  if after is null then
    return null;
  end if;
  if s ~ '^[0-9]{1,2} seconds?$' then
    return after + make_interval(secs => split_part(s, ' ', 1)::integer);
  end if;
  s := case s
    when '@yearly' then '0 0 1 1 *' when '@annually' then '0 0 1 1 *' when '@monthly' then '0 0 1 * *'
    when '@weekly' then '0 0 * * 0' when '@daily' then '0 0 * * *' when '@midnight' then '0 0 * * *'
    when '@hourly' then '0 * * * *' else s end;
  f := regexp_split_to_array(s, '\s+');
  if cardinality(f) <> 5 then
    return null;
  end if;
  for i in 1..12 loop
    f[4] := replace(f[4], names[i], i::text);
  end loop;
  for i in 1..7 loop
    f[5] := replace(f[5], day_names[i], (i - 1)::text);
  end loop;
  mins := maintenance.cron_field_values(f[1], 0, 59);
  hrs := maintenance.cron_field_values(f[2], 0, 23);
  doms := maintenance.cron_field_values(f[3], 1, 31);
  mons := maintenance.cron_field_values(f[4], 1, 12);
  dows := array(select distinct case when v = 7 then 0 else v end from unnest(maintenance.cron_field_values(f[5], 0, 7)) v);
  if mins is null or hrs is null or doms is null or mons is null or f[5] is null
     or maintenance.cron_field_values(f[5], 0, 7) is null then
    return null;
  end if;
  dom_star := left(f[3], 1) = '*';
  dow_star := left(f[5], 1) = '*';
  d := start_at::date;
  -- a leap-day schedule recurs within 8 years; an impossible one (31 February) ends the loop with null
  for i in 0..(366 * 8) loop
    if extract(month from d)::integer = any (mons) then
      if dom_star or dow_star then
        day_ok := extract(day from d)::integer = any (doms) and extract(dow from d)::integer = any (dows);
      else
        day_ok := extract(day from d)::integer = any (doms) or extract(dow from d)::integer = any (dows);
      end if;
      if day_ok then
        select min(d + make_interval(hours => h, mins => mi)) into hit
        from unnest(hrs) h cross join unnest(mins) mi
        where d + make_interval(hours => h, mins => mi) >= start_at;
        if hit is not null then
          return hit at time zone 'UTC';
        end if;
      end if;
    end if;
    d := d + 1;
  end loop;
  return null;
end;
$$;
revoke all on function maintenance.cron_next_run(text, timestamptz) from public, anon, authenticated;
grant execute on function maintenance.cron_next_run(text, timestamptz) to service_role;
