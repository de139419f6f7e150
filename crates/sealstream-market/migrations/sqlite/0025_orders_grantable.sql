-- The operator granter's sweep of paid orders to grant, oldest payment
-- first (`operator_key::db::grantable`, run at every pass, so at every
-- live chunk): only orders that name a dataset and are paid but not yet
-- granted. A subscription period's order names no dataset and stays
-- `paid`; without this index every pass read all of them, a cost that grew
-- with every period ever paid.
CREATE INDEX orders_grantable ON orders (paid_at, id) WHERE state = 'paid' AND dataset_id <> '';
