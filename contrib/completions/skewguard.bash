# bash completion for skewguard. Generated from the settings table by `cargo run --example generate`; do not edit.
_skewguard() {
    local cur="${COMP_WORDS[COMP_CWORD]}" prev="${COMP_WORDS[COMP_CWORD-1]}"
    local command="" i
    for ((i = 1; i < COMP_CWORD; i++)); do
        case "${COMP_WORDS[i]}" in
        --)
            # exec's workload: complete its command line
            if ((i == COMP_CWORD - 1)); then
                mapfile -t COMPREPLY < <(compgen -c -- "$cur")
            else
                mapfile -t COMPREPLY < <(compgen -f -- "$cur")
            fi
            return 0
            ;;
        check|wait|exec|serve|health|help)
            [[ -z $command ]] && command=${COMP_WORDS[i]}
            ;;
        esac
    done
    case "$prev" in
    --sources)
        return 0
        ;;
    --profile)
        mapfile -t COMPREPLY < <(compgen -W "aws aws-s3 azure kerberos vault-jwt totp" -- "$cur")
        return 0
        ;;
    --max-skew)
        return 0
        ;;
    --warn-skew)
        return 0
        ;;
    --on-unknown)
        mapfile -t COMPREPLY < <(compgen -W "fail pass" -- "$cur")
        return 0
        ;;
    --min-sources)
        return 0
        ;;
    --timeout)
        return 0
        ;;
    --samples)
        return 0
        ;;
    --sample-interval)
        return 0
        ;;
    --http-budget)
        return 0
        ;;
    --auth-select)
        mapfile -t COMPREPLY < <(compgen -W "mix require ignore" -- "$cur")
        return 0
        ;;
    --max-source-error)
        return 0
        ;;
    --ca-file)
        mapfile -t COMPREPLY < <(compgen -f -- "$cur")
        return 0
        ;;
    --output)
        mapfile -t COMPREPLY < <(compgen -W "text json npd" -- "$cur")
        return 0
        ;;
    --log)
        return 0
        ;;
    --log-format)
        mapfile -t COMPREPLY < <(compgen -W "text json" -- "$cur")
        return 0
        ;;
    --interval)
        return 0
        ;;
    --wait-timeout)
        return 0
        ;;
    --listen)
        return 0
        ;;
    --max-drift)
        return 0
        ;;
    --stale-after)
        return 0
        ;;
    --publish)
        return 0
        ;;
    --node-owner)
        return 0
        ;;
    --cache-file)
        mapfile -t COMPREPLY < <(compgen -f -- "$cur")
        return 0
        ;;
    --cache-max-age)
        return 0
        ;;
    esac
    local words
    case "$command" in
    "") words="check wait exec serve health help --help --version" ;;
    check) words="--sources --profile --max-skew --warn-skew --on-unknown --min-sources --timeout --samples --sample-interval --http-budget --auth-select --max-source-error --ca-file --output --log --log-format --max-drift --node-owner --cache-file --cache-max-age --disabled --quiet --help" ;;
    wait) words="--sources --profile --max-skew --warn-skew --on-unknown --min-sources --timeout --samples --sample-interval --http-budget --auth-select --max-source-error --ca-file --output --log --log-format --interval --wait-timeout --node-owner --disabled --quiet --help" ;;
    exec) words="--sources --profile --max-skew --warn-skew --on-unknown --min-sources --timeout --samples --sample-interval --http-budget --auth-select --max-source-error --ca-file --output --log --log-format --interval --wait-timeout --node-owner --disabled --quiet --help --" ;;
    serve) words="--sources --profile --max-skew --warn-skew --on-unknown --min-sources --timeout --samples --sample-interval --http-budget --auth-select --max-source-error --ca-file --log --log-format --interval --listen --max-drift --stale-after --publish --node-owner --disabled --help" ;;
    health) words="--timeout --log --log-format --listen --help" ;;
    help) words="check wait exec serve health help" ;;
    esac
    mapfile -t COMPREPLY < <(compgen -W "$words" -- "$cur")
}
complete -F _skewguard skewguard
