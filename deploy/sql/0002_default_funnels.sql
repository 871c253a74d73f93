-- The two shipped funnel definitions (DOMAIN.md section 1). Idempotent so a
-- deployment that preloaded them (or edited them through the admin CLI) keeps
-- its rows. Probabilities are basis points; dwell limits are what a sales ops
-- team would start from and can be changed as reference data.
--
-- Stage 08 of the default funnel is "agreement on all terms (won), or lost":
-- a stage code is one row, so the won outcome keeps code '08' and the lost
-- outcome is a separate terminal 'LOST' (0%, category omitted). The project
-- process follows the same pattern.

INSERT INTO funnel_definition (id, name, description, is_default) VALUES
    ('default-8', 'Key-account funnel (8 stages)',
     'Default 8-stage funnel of seed 003; used when a business unit has no mapping', true),
    ('project-6', 'Project sales process (6 stages)',
     'Customer development to implementation, seed 002', false)
ON CONFLICT DO NOTHING;

INSERT INTO funnel_stage
    (definition_id, code, ordinal, name, win_probability_bp, default_category,
     max_dwell_days, is_won, is_lost)
VALUES
    ('default-8', '01', 1, 'Find the right contact and the specific need',   1000, 'pipeline',  30,   false, false),
    ('default-8', '02', 2, 'Confirm need, budget and sponsor',               2000, 'pipeline',  30,   false, false),
    ('default-8', '03', 3, 'Map the customer''s whole organisation',         3000, 'pipeline',  45,   false, false),
    ('default-8', '04', 4, 'Sales target set, sales resources requested',    4000, 'pipeline',  45,   false, false),
    ('default-8', '05', 5, 'On the customer''s shortlist / bidding',         5000, 'best_case', 60,   false, false),
    ('default-8', '06', 6, 'Sole selection / bid won',                       7000, 'best_case', 45,   false, false),
    ('default-8', '07', 7, 'Commercial negotiation',                         9000, 'commit',    30,   false, false),
    ('default-8', '08', 8, 'Agreement on all terms (won)',                  10000, 'closed',    NULL, true,  false),
    ('default-8', 'LOST', 9, 'Opportunity lost',                                0, 'omitted',   NULL, false, true),

    -- Winning the contract ends commercial negotiation; implementation is
    -- delivery of a won deal, hence the won terminal.
    ('project-6', '01', 1, 'Customer development',                           1000, 'pipeline',  60,   false, false),
    ('project-6', '02', 2, 'Project initiation',                             2500, 'pipeline',  45,   false, false),
    ('project-6', '03', 3, 'Proposal',                                       4000, 'pipeline',  45,   false, false),
    ('project-6', '04', 4, 'Bidding',                                        6000, 'best_case', 60,   false, false),
    ('project-6', '05', 5, 'Commercial negotiation',                         8000, 'commit',    30,   false, false),
    ('project-6', '06', 6, 'Implementation (won)',                          10000, 'closed',    NULL, true,  false),
    ('project-6', 'LOST', 7, 'Opportunity lost',                                0, 'omitted',   NULL, false, true)
ON CONFLICT DO NOTHING;
