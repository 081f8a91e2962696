-- Dev-only stand-in for pg_net (https://github.com/supabase/pg_net): same schema, tables, and function signatures
-- and defaults. A call only enqueues a row; dev/pg_net_worker.ts sends it once the transaction has committed
-- (the NOTIFY below is delivered at commit, and uncommitted rows are invisible to the worker), honours
-- timeout_milliseconds, and writes net._http_response. A rolled-back transaction sends nothing, as with pg_net.
create schema if not exists net;
do $$ begin
  if not exists (select 1 from pg_type t join pg_namespace n on n.oid = t.typnamespace
                 where n.nspname = 'net' and t.typname = 'http_method') then
    create type net.http_method as enum ('GET', 'POST', 'DELETE');
  end if;
end $$;
create unlogged table if not exists net.http_request_queue (
  id bigserial not null,
  method net.http_method not null,
  url text not null,
  headers jsonb not null,
  body bytea,
  timeout_milliseconds integer not null
);
create unlogged table if not exists net._http_response (
  id bigint,
  status_code integer,
  content_type text,
  headers jsonb,
  content text,
  timed_out boolean,
  error_msg text,
  created timestamptz not null default now()
);
create index if not exists _http_response_created_idx on net._http_response (created);

create or replace function net._urlencode_params(url text, params jsonb) returns text
language sql immutable set search_path = '' as $$
  select case when params is null or params = '{}'::jsonb then url
    else url || case when position('?' in url) > 0 then '&' else '?' end || (
      select string_agg(key || '=' || value, '&') from jsonb_each_text(params)) end;
$$;

create or replace function net._enqueue(method net.http_method, url text, headers jsonb, body bytea, timeout_milliseconds integer)
returns bigint language plpgsql set search_path = '' as $$
declare request_id bigint;
begin
  insert into net.http_request_queue (method, url, headers, body, timeout_milliseconds)
  values (method, url, coalesce(headers, '{}'::jsonb), body, timeout_milliseconds)
  returning id into request_id;
  perform pg_notify('pg_net_standin', request_id::text);
  return request_id;
end $$;

create or replace function net.http_get(url text, params jsonb default '{}'::jsonb, headers jsonb default '{}'::jsonb,
  timeout_milliseconds integer default 2000)
returns bigint language sql set search_path = '' as $$
  select net._enqueue('GET', net._urlencode_params(url, params), headers, null, timeout_milliseconds);
$$;

create or replace function net.http_post(url text, body jsonb default '{}'::jsonb, params jsonb default '{}'::jsonb,
  headers jsonb default '{"Content-Type": "application/json"}'::jsonb, timeout_milliseconds integer default 2000)
returns bigint language sql set search_path = '' as $$
  select net._enqueue('POST', net._urlencode_params(url, params), headers, convert_to(body::text, 'UTF8'),
    timeout_milliseconds);
$$;

create or replace function net.http_delete(url text, params jsonb default '{}'::jsonb, headers jsonb default '{}'::jsonb,
  timeout_milliseconds integer default 2000)
returns bigint language sql set search_path = '' as $$
  select net._enqueue('DELETE', net._urlencode_params(url, params), headers, null, timeout_milliseconds);
$$;

revoke all on schema net from public, anon, authenticated;
grant usage on schema net to postgres, service_role;
